"""End to end per photo: a 500x375 JPEG on disk -> the coloured mask, next to the bare int8 invoke.

Issue 20's first target: ``Segmenter.predict(path)`` (decode + EXIF, resize,
input tensor, invoke, dequantize, full-size mask) plus the palette image of
the mask, with the model on one thread, takes at most 1.25 x the bare invoke
p50 of the best int8 artifact (``backend.invoke`` on a prepared tensor: the
runtime call alone, as bench's latency rows). Every int8 artifact of the
bundle is timed both ways, plus a stage-by-stage pass, call by call in
interleaved rounds (the order rotating each round) so load on a shared
machine hits every row alike. Medians throughout.

    python benchmarks/bench_photo.py BUNDLE [--photos 4] [--rounds 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photos import write_photos  # noqa: E402
from tables import print_markdown_table  # noqa: E402

from segedge.bench.stats import NS_PER_MS  # noqa: E402
from segedge.data.images import read_upright  # noqa: E402
from segedge.edge.postprocess import image_masks, mask_image  # noqa: E402
from segedge.edge.predictor import Segmenter, load  # noqa: E402
from segedge.manifest import load_manifest  # noqa: E402
from segedge.preprocess import resize_uint8  # noqa: E402

BOUND = 1.25  # end to end <= 1.25 x the best int8 artifact's bare invoke p50
STAGES = ("decode", "resize + tensor", "invoke", "dequantize", "full-size mask", "colour")


def int8_artifacts(bundle: Path) -> list[str]:
    manifest = load_manifest(bundle)
    return [name for name, info in manifest.artifacts.items()
            if info.precision == "int8" and (bundle / info.file).is_file()]


def end_to_end(segmenter: Segmenter, path: Path) -> None:
    """What the issue times: the JPEG from disk to the coloured mask."""
    mask_image(segmenter.predict(path), segmenter.manifest.palette)


def stages(segmenter: Segmenter, path: Path) -> list[int]:
    """The same work split at its seams (nanoseconds per stage)."""
    clock, backend, manifest = time.perf_counter_ns, segmenter.backend, segmenter.manifest
    t0 = clock()
    image = read_upright(path)
    t1 = clock()
    pixels, placement = resize_uint8(image, manifest.preprocess)
    tensor = backend.prepare(pixels[None])
    t2 = clock()
    raw = backend.invoke(tensor)
    t3 = clock()
    logits = backend.finish(raw)
    t4 = clock()
    mask = image_masks(logits, [placement], [image.size], segmenter.upsample, manifest.num_classes, manifest.void)[0]
    t5 = clock()
    mask_image(mask, manifest.palette)
    t6 = clock()
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--photos", type=int, default=4, help="distinct 500x375 JPEGs [4]")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds over all photos [10]")
    parser.add_argument("--threads", type=int, default=1, help="model threads [1, as the target says]")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    names = int8_artifacts(args.bundle)
    if not names:
        sys.exit(f"{args.bundle}: no int8 artifact to compare with")
    paths = write_photos(Path(tempfile.mkdtemp(prefix="segedge-photo-")), args.photos)
    segmenters = {name: load(args.bundle, threads=args.threads, artifact=name) for name in names}
    tensors = {}
    for name, segmenter in segmenters.items():
        spec = segmenter.manifest.preprocess
        tensors[name] = [segmenter.backend.prepare(resize_uint8(read_upright(p), spec)[0][None]) for p in paths]
        for _ in range(args.warmup):
            end_to_end(segmenter, paths[0])
            segmenter.backend.invoke(tensors[name][0])
    rows = [(name, kind) for name in names for kind in ("invoke", "end-to-end", "stages")]
    samples: dict[tuple[str, str], list[float]] = {row: [] for row in rows}
    stage_ns: dict[str, list[list[int]]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    print(f"timing {len(rows)} rows x {len(paths)} photos x {args.rounds} rounds", file=sys.stderr)
    for round_ in range(args.rounds):
        order = rows[round_ % len(rows):] + rows[: round_ % len(rows)]
        for index, path in enumerate(paths):
            for name, kind in order:
                segmenter = segmenters[name]
                start = clock()
                if kind == "invoke":
                    segmenter.backend.invoke(tensors[name][index])
                elif kind == "end-to-end":
                    end_to_end(segmenter, path)
                else:
                    stage_ns[name].append(stages(segmenter, path))
                samples[(name, kind)].append((clock() - start) / NS_PER_MS)
    invoke = {name: statistics.median(samples[(name, "invoke")]) for name in names}
    best = min(invoke, key=invoke.get)
    table, figures = [], {}
    for name in names:
        e2e = statistics.median(samples[(name, "end-to-end")])
        ratio = e2e / invoke[best]
        figures[name] = {"invoke_p50_ms": invoke[name], "e2e_p50_ms": e2e, "ratio_to_best_invoke": ratio}
        table.append([name + (" (best int8)" if name == best else ""), f"{invoke[name]:.3f}", f"{e2e:.3f}",
                      f"{ratio:.2f}", f"{BOUND:.2f}", "yes" if ratio <= BOUND else "no"])
    first = segmenters[best]
    print(f"{first.describe()}; {len(paths)} photos 500x375 JPEG, model {first.manifest.preprocess.width}x"
          f"{first.manifest.preprocess.height}, upsample {first.upsample}; medians of {args.rounds * len(paths)} calls")
    print_markdown_table(["artifact", "invoke p50 ms", "end-to-end p50 ms", "x best invoke", "bound", "within"], table)
    print()
    split = [statistics.median(ns[i] for ns in stage_ns[best]) / NS_PER_MS for i in range(len(STAGES))]
    total = sum(split)
    print_markdown_table(["stage (" + best + ")", "p50 ms", "% of sum"],
                         [[stage, f"{ms:.3f}", f"{100 * ms / total:.1f}"] for stage, ms in zip(STAGES, split,
                                                                                                strict=True)])
    if args.json:
        args.json.write_text(json.dumps({"best": best, "bound": BOUND, "artifacts": figures,
                                         "stages_ms": dict(zip(STAGES, split, strict=True))}, indent=2))
    for segmenter in segmenters.values():
        segmenter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
