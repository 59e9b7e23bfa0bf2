"""What does making the full-size mask cost next to int8 inference, and which way is fastest?

For each photo (500x375 JPEG, ``photos.py``) the chosen artifact's model-size
logits are turned into the image-size mask (``--upsample logits``: bilinear
logits, then argmax) several ways, timed call by call in interleaved rounds
together with the bare runtime call (``backend.invoke``, the input already
prepared), so load on a shared machine hits every row alike:

* ``pil``: each class plane resized by PIL (mode "F"), then argmax: what
  ``segedge.contract.upsample`` did before the block-wise mask, and the reference for "equal";
* ``numpy``: the same bilinear weights as two dense matrix products
  (``Wy @ plane @ Wx.T`` for all classes at once), then argmax;
* ``cv2``: ``cv2.resize(INTER_LINEAR)`` on the (h, w, C) logit planes, then
  argmax (only when OpenCV is importable; it is the optional camera extra);
* ``block``: ``segedge.contract.upsample.upsampled_argmax``: the model-size argmax,
  enlarged, where a pixel's 2x2 source taps agree, and bilinear logits of the
  classes that can win only where they do not;
* ``default``: ``segedge.contract.upsample.full_size_mask`` as predict runs it: ``block``
  unless ``segedge.contract.upsample.MaskCost`` predicts enlarging every plane is
  cheaper for this image (many mixed blocks), then ``cv2`` when importable,
  else ``pil``;
* ``mask``: argmax at model size, then nearest (``--upsample mask``), for scale.

Upsampling inside the graph is not measured: the model's output size is fixed
at export, while photos come in every size.

    python benchmarks/bench_upsample.py BUNDLE [--format int8] [--photos 6] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The numpy row's matrix products would start OpenBLAS's thread pool, whose threads spin after each
# product on the cores the next row's 2-thread invoke needs (int8 at 224 px measured 7.4 ms here
# against 3.3 ms alone). One BLAS thread keeps the invoke row honest; segedge's own mask uses no BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photos import write_photos  # noqa: E402
from scratch import scratch_folder  # noqa: E402
from tables import print_markdown_table  # noqa: E402

from segedge.bench.stats import NS_PER_MS  # noqa: E402
from segedge.contract.preprocess import Placement, resize_uint8  # noqa: E402
from segedge.contract.upsample import _taps, full_size_mask, resize_logits, upsampled_argmax  # noqa: E402
from segedge.edge.predictor import default_threads, load  # noqa: E402

BOUND = 0.15  # the target: the full-size mask costs at most 15 % of int8 inference per frame


def _crop(logits: np.ndarray, placement: Placement) -> np.ndarray:
    return logits[placement.top : placement.top + placement.height, placement.left : placement.left + placement.width]


def _weights(n_in: int, n_out: int) -> np.ndarray:
    first, second, frac = _taps(n_in, n_out)
    matrix = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, first), (1.0 - frac).astype(np.float32))
    np.add.at(matrix, (rows, second), frac.astype(np.float32))
    return matrix


def methods() -> dict[str, Callable[[np.ndarray, Placement, tuple[int, int]], np.ndarray]]:
    def pil(logits, placement, size):
        return np.argmax(resize_logits(logits, placement, size), axis=0)

    def dense(logits, placement, size):
        crop = _crop(logits, placement)
        rows = np.tensordot(_weights(crop.shape[0], size[1]), crop, axes=(1, 0))  # (h, w_in, C)
        full = np.matmul(rows.transpose(0, 2, 1), _weights(crop.shape[1], size[0]).T)  # (h, C, w)
        return np.argmax(full, axis=1)

    def block(logits, placement, size):
        return upsampled_argmax(_crop(logits, placement), size)

    def default(logits, placement, size):
        return full_size_mask(logits, placement, size, "logits", logits.shape[-1], 255)

    def nearest(logits, placement, size):
        return full_size_mask(logits, placement, size, "mask", logits.shape[-1], 255)

    found = {"pil": pil, "numpy": dense}
    try:
        import cv2

        def opencv(logits, placement, size):
            return np.argmax(cv2.resize(np.ascontiguousarray(_crop(logits, placement)), size,
                                        interpolation=cv2.INTER_LINEAR), axis=-1)

        found["cv2"] = opencv
    except ImportError:
        print("cv2 not importable: no cv2 row", file=sys.stderr)
    found["block"] = block
    found["default"] = default
    found["mask"] = nearest
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--format", default="int8", help="artifact whose logits and invoke time are used")
    parser.add_argument("--threads", type=int, default=default_threads(), help="inference threads [all cores]")
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    folder = scratch_folder("segedge-upsample-")
    paths = write_photos(folder, args.photos)
    segmenter = load(args.bundle, threads=args.threads, artifact=args.format)
    backend = segmenter.backend
    cases = []
    for path in paths:
        image = segmenter.logits([path])  # (logits, placements)
        logits, placements = image
        from PIL import Image

        size = Image.open(path).size
        cases.append((logits[0], placements[0], size))
    pixels, _ = resize_uint8(Image.open(paths[0]).convert("RGB"), segmenter.manifest.preprocess)
    tensor = backend.prepare(pixels[None])
    for _ in range(5):
        backend.invoke(tensor)
    found = methods()
    reference = [found["pil"](*case) for case in cases]
    samples: dict[str, list[float]] = {name: [] for name in ["invoke", *found]}
    clock = time.perf_counter_ns
    names = list(samples)
    print(f"timing {len(names)} rows x {len(cases)} photos x {args.rounds} rounds", file=sys.stderr)
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[: round_ % len(names)]
        for case in cases:
            for name in order:
                start = clock()
                if name == "invoke":
                    backend.invoke(tensor)
                else:
                    found[name](*case)
                samples[name].append((clock() - start) / NS_PER_MS)
    invoke = statistics.median(samples["invoke"])
    rows = [["invoke (" + args.format + f", {args.threads} thr)", f"{invoke:.3f}", "100.0", "", "", ""]]
    for name in found:
        p50 = statistics.median(samples[name])
        equal = np.mean([np.mean(found[name](*case) == ref) for case, ref in zip(cases, reference, strict=True)])
        share = p50 / invoke
        verdict = "" if name == "mask" else ("yes" if share <= BOUND else "no")
        rows.append([name, f"{p50:.3f}", f"{100 * share:.1f}", f"{100 * BOUND:.0f}", verdict, f"{100 * equal:.4f}"])
    print(f"{segmenter.describe()}; photos {cases[0][2][0]}x{cases[0][2][1]}, model "
          f"{segmenter.manifest.preprocess.width}x{segmenter.manifest.preprocess.height}, "
          f"{segmenter.manifest.model_outputs} classes")
    print_markdown_table(["row", "p50 ms", "% of invoke p50", "bound %", "within", "equal px % vs pil"], rows)
    segmenter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
