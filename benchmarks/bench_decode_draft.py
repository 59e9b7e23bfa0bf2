"""Reduced-scale JPEG decode (PIL's ``draft``) before the resize: what it saves and what it changes.

The model sees the photo at its own input size (96-224 px), so a 12 MP JPEG could
be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) and then resized:
the decode and the resize shrink with it. But the model then sees other pixels,
so this is part of the device pipeline and of the proof. This script measures
both sides on one bundle, with the artifact the device runs:

* the bundle's reference set (the images the gate judges, at their own size):
  agreement with the Keras masks (the gate's measure) and mIoU against the
  truth, decoded in full and with ``draft``, and how many pixels the two ways
  disagree on;
* synthetic photos at 0.3, 2 and 12 MP (``segedge data synth``'s scenes,
  enlarged smoothly, sensor grain added, truth enlarged nearest): mIoU against
  the truth both ways, the agreement between the two ways, and the time of
  decode + resize both ways (median of ``--rounds``).

``draft`` is asked for at least ``--factor`` times the model input on each side
(default 2: the bilinear resize still shrinks by 2 or more, as the full-size
path does). The full-size mask is made at the photo's own size both ways, from
the same model-size logits path ``segedge predict`` runs (``mask_from``).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_large_photo import parse_size, scene_photo, timed  # noqa: E402
from tables import print_markdown_table  # noqa: E402

from segedge.contract.metrics import agreement, confusion_matrix, mean_iou  # noqa: E402
from segedge.contract.preprocess import resize_uint8  # noqa: E402
from segedge.contract.reference import Reference  # noqa: E402
from segedge.data.images import orientation, read_upright  # noqa: E402
from segedge.edge.predictor import load  # noqa: E402


def decode(data: bytes, request: tuple[int, int] | None) -> tuple[Image.Image, tuple[int, int]]:
    """The upright RGB image the model's resize starts from, and the photo's upright (width, height).

    ``request``: the smallest (width, height) the reduced decode may return, upright; None decodes in full."""
    image = Image.open(io.BytesIO(data))
    size = image.size
    turned = orientation(image) in (5, 6, 7, 8)
    if turned:
        size = size[::-1]
    if request is not None and image.format == "JPEG":
        image.draft("RGB", request[::-1] if turned else request)
    return read_upright(image), size


def mask_and_input_size(segmenter, data: bytes, request: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    """The full-size mask ``segedge predict`` would write, and the size of the decoded image the resize started
    from (smaller than the photo where the reduced decode took effect)."""
    image, size = decode(data, request)
    pixels, placement = resize_uint8(image, segmenter.manifest.preprocess)
    return segmenter.mask_from(segmenter.infer_raw(pixels), placement, size), image.size


def photo_bytes(size: tuple[int, int], seed: int, grain: float) -> tuple[bytes, np.ndarray]:
    """A synthetic photo as JPEG bytes (quality 90) and its truth at the photo's size."""
    photo, truth = scene_photo(size, seed, grain)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), np.asarray(truth, dtype=np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--format", default="int8", help="the bundle's artifact to run [int8]")
    parser.add_argument("--factor", type=float, default=2.0, help="draft at least this x the model input [2]")
    parser.add_argument("--sizes", default="640x480,1920x1080,4056x3040", help="synthetic photo sizes WxH")
    parser.add_argument("--photos", type=int, default=4, help="synthetic photos per size [4]")
    parser.add_argument("--grain", type=float, default=8.0, help="pixel noise std in the synthetic photos [8]")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds per photo [5]")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    segmenter = load(args.bundle, threads=args.threads, artifact=args.format)
    spec, manifest = segmenter.manifest.preprocess, segmenter.manifest
    request = (int(np.ceil(spec.width * args.factor)), int(np.ceil(spec.height * args.factor)))
    print(f"{args.bundle} {args.format} ({spec.width}x{spec.height} input, {spec.resize}); draft to at least "
          f"{request[0]}x{request[1]}")

    reference = Reference.load(args.bundle / "reference.npz")
    rows = []
    for name, req in (("full decode", None), ("draft", request)):
        got, decoded = zip(*(mask_and_input_size(segmenter, data, req) for data in reference.originals), strict=True)
        cm = sum(confusion_matrix(t, m, manifest.num_classes, manifest.void) for t, m in zip(reference.truth_full, got,
                                                                                           strict=True))
        pixels = sum(m.size for m in got)
        agree = sum(agreement(m, k) * m.size for m, k in zip(got, reference.keras_full, strict=True)) / pixels
        rows.append([name, str(len(got)), f"{100 * agree:.3f}", f"{100 * mean_iou(cm):.2f}"])
        if req is None:
            full, full_sizes = got, decoded
        else:
            same = sum(agreement(a, b) * a.size for a, b in zip(full, got, strict=True)) / pixels
            touched = sum(1 for a, b in zip(full_sizes, decoded, strict=True) if a != b)
            rows[-1] += [f"{100 * same:.3f}", str(touched)]
    rows[0] += ["100.000", "0"]
    print("\nreference set (the gate's images, each at its own size)")
    print_markdown_table(["decode", "images", "agreement with Keras %", "mIoU %", "equal to full decode %",
                          "images reduced"], rows)

    rows = []
    for size in [parse_size(s) for s in args.sizes.split(",")]:
        cms = {None: 0, request: 0}
        same_pixels, total, times = 0, 0, {None: [], request: []}
        for seed in range(args.photos):
            data, truth = photo_bytes(size, seed, args.grain)
            got = {}
            for req in (None, request):
                got[req] = mask_and_input_size(segmenter, data, req)[0]
                cms[req] = cms[req] + confusion_matrix(truth, got[req], manifest.num_classes, manifest.void)
                times[req].append(timed(lambda data=data, req=req: resize_uint8(decode(data, req)[0], spec),
                                        args.rounds))
            same_pixels += int((got[None] == got[request]).sum())
            total += truth.size
        full_ms, draft_ms = (1000 * statistics.median(times[r]) for r in (None, request))
        rows.append([f"{size[0]}x{size[1]}", str(args.photos), f"{100 * mean_iou(cms[None]):.2f}",
                     f"{100 * mean_iou(cms[request]):.2f}", f"{100 * same_pixels / total:.3f}",
                     f"{full_ms:.1f}", f"{draft_ms:.1f}"])
    print("\nsynthetic photos (truth enlarged nearest)")
    print_markdown_table(["photo", "photos", "mIoU full %", "mIoU draft %", "masks equal %",
                          "decode+resize full ms", "decode+resize draft ms"], rows)
    segmenter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
