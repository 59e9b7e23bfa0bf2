"""End to end per photo: a 500x375 JPEG on disk -> the coloured mask, next to the bare int8 invoke.

The per-photo target: ``Segmenter.predict(path)`` (decode + EXIF, resize,
input tensor, invoke, full-size mask from the raw output) plus the palette image of
the mask, with the model on one thread, takes at most 1.25 x the bare invoke
p50 of the best int8 artifact (``backend.invoke`` on a prepared tensor: the
runtime call alone, as bench's latency rows). Every int8 artifact of the
bundle is timed both ways, plus a stage-by-stage pass, call by call in
interleaved rounds (the order rotating each round) so load on a shared
machine hits every row alike. Medians throughout.

Those rows are latency: one photo alone, start to finish. The stream rows
give the time per photo when many come in a row: ``--stream`` distinct
500x375 JPEGs through ``predict_files`` (what ``segedge predict FOLDER --out
DIR --no-overlay`` runs: it also encodes and writes each mask PNG), once one
after another and once through the predict pipeline (reader, inference and
writer threads overlapping), total wall time / photos, one pass of each per
round, in rotating order after that round's per-photo calls. Next to each
stream row: the process's CPU time per photo (all threads, the model's
included). A pipeline can only beat the one-after-another row by running
threads at once: where its wall time is close to its CPU time, it ran on
about one core at a time (no free core on a loaded machine, or the GIL).

    python benchmarks/bench_photo.py BUNDLE [--photos 4] [--rounds 10] [--threads 1] [--stream 24]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photos import write_photos  # noqa: E402
from tables import print_markdown_table  # noqa: E402

from segedge.bench.stats import NS_PER_MS  # noqa: E402
from segedge.contract.manifest import load_manifest  # noqa: E402
from segedge.contract.preprocess import resize_uint8  # noqa: E402
from segedge.data.images import mask_to_image, read_upright  # noqa: E402
from segedge.edge.predictor import Segmenter, load  # noqa: E402
from segedge.edge.runner import predict_files  # noqa: E402
from segedge.edge.sources import Source, resolve_inputs  # noqa: E402

BOUND = 1.25  # end to end <= 1.25 x the best int8 artifact's bare invoke p50
STREAM_ROWS = ("stream one after another", "stream pipelined")
STAGES = ("decode", "resize + tensor", "invoke", "full-size mask", "colour")


def int8_artifacts(bundle: Path) -> list[str]:
    manifest = load_manifest(bundle)
    return [name for name, info in manifest.artifacts.items()
            if info.precision == "int8" and (bundle / info.file).is_file()]


def end_to_end(segmenter: Segmenter, path: Path) -> None:
    """What the issue times: the JPEG from disk to the coloured mask."""
    mask_to_image(segmenter.predict(path), segmenter.manifest.palette)


def stream(segmenter: Segmenter, sources: list[Source], out: Path, pipelined: bool) -> None:
    """``segedge predict FOLDER --out DIR --no-overlay`` on ``sources``, with or without the pipeline."""
    result = predict_files(segmenter, sources, out, overlay=False, pipelined=pipelined)
    if result.failed or len(result.images) != len(sources):
        sys.exit(f"stream: {len(result.images)} of {len(sources)} photos segmented, failed: {result.failed}")


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
    mask = segmenter.mask_from(raw, placement, image.size)  # dequantizing what the mask needs, as predict does
    t4 = clock()
    mask_to_image(mask, manifest.palette)
    t5 = clock()
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]


def stream_table(names: list[str], best: str, invoke: dict[str, float], samples: dict[tuple[str, str], list[float]],
                 cpu_ms: dict[tuple[str, str], list[float]], figures: dict[str, dict[str, float]]) -> list[list[str]]:
    """Bare invoke, latency and the two stream rows of each artifact, each against the best int8 invoke; the
    stream rows also with the process's CPU time per photo (all threads: with free cores, wall < CPU)."""
    table = []
    for name in names:
        rows = [("bare invoke p50", invoke[name], ""), ("latency: one photo alone", figures[name]["e2e_p50_ms"], "")]
        for kind in STREAM_ROWS:
            ms, cpu = statistics.median(samples[(name, kind)]), statistics.median(cpu_ms[(name, kind)])
            key = kind.replace(" ", "_")
            figures[name][key + "_ms_per_photo"], figures[name][key + "_cpu_ms_per_photo"] = ms, cpu
            rows.append((f"{kind}, per photo", ms, f"{cpu:.3f}"))
        for label, ms, cpu in rows:
            ratio = ms / invoke[best]
            within = "" if label.startswith("bare") else ("yes" if ratio <= BOUND else "no")
            table.append([name, label, f"{ms:.3f}", cpu, f"{ratio:.2f}", "" if not within else f"{BOUND:.2f}", within])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--photos", type=int, default=4, help="distinct 500x375 JPEGs [4]")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds over all photos [10]")
    parser.add_argument("--threads", type=int, default=1, help="model threads [1, as the target says]")
    parser.add_argument("--stream", type=int, default=24, help="distinct photos in each stream pass [24]; 0: none")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    names = int8_artifacts(args.bundle)
    if not names:
        sys.exit(f"{args.bundle}: no int8 artifact to compare with")
    work = Path(tempfile.mkdtemp(prefix="segedge-photo-"))
    paths = write_photos(work / "photos", args.photos)
    streamed = resolve_inputs([str(work / "stream")]).sources if write_photos(work / "stream", args.stream) else []
    segmenters = {name: load(args.bundle, threads=args.threads, artifact=name) for name in names}
    tensors = {}
    for name, segmenter in segmenters.items():
        spec = segmenter.manifest.preprocess
        tensors[name] = [segmenter.backend.prepare(resize_uint8(read_upright(p), spec)[0][None]) for p in paths]
        for _ in range(args.warmup):
            end_to_end(segmenter, paths[0])
            segmenter.backend.invoke(tensors[name][0])
        for kind in STREAM_ROWS[: 2 if streamed else 0]:
            stream(segmenter, streamed, work / f"{name}-{kind}", kind == STREAM_ROWS[1])
    rows = [(name, kind) for name in names for kind in ("invoke", "end-to-end", "stages")]
    stream_rows = [(name, kind) for name in names for kind in STREAM_ROWS[: 2 if streamed else 0]]
    samples: dict[tuple[str, str], list[float]] = {row: [] for row in rows + stream_rows}
    stage_ns: dict[str, list[list[int]]] = {name: [] for name in names}
    cpu_ms: dict[tuple[str, str], list[float]] = {}  # process CPU time (all threads) per photo, stream rows
    clock = time.perf_counter_ns
    print(f"timing {len(rows)} rows x {len(paths)} photos + {len(stream_rows)} stream rows x {len(streamed)} photos, "
          f"x {args.rounds} rounds", file=sys.stderr)
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
        turn = round_ % max(1, len(stream_rows))
        for name, kind in stream_rows[turn:] + stream_rows[:turn]:
            start, cpu = clock(), time.process_time_ns()
            stream(segmenters[name], streamed, work / f"{name}-{kind}", kind == STREAM_ROWS[1])
            samples[(name, kind)].append((clock() - start) / NS_PER_MS / len(streamed))
            cpu_ms.setdefault((name, kind), []).append((time.process_time_ns() - cpu) / NS_PER_MS / len(streamed))
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
    if streamed:
        print()
        print(f"time per photo: latency = one photo alone; stream = {len(streamed)} photos through predict_files "
              f"(mask PNG written, no overlay), total wall / {len(streamed)}; medians of {args.rounds} passes")
        head = ["artifact", "row", "ms per photo", "cpu ms per photo", "x best invoke", "bound", "within"]
        print_markdown_table(head, stream_table(names, best, invoke, samples, cpu_ms, figures))
    if args.json:
        args.json.write_text(json.dumps({"best": best, "bound": BOUND, "artifacts": figures, "stream": len(streamed),
                                         "stages_ms": dict(zip(STAGES, split, strict=True))}, indent=2))
    for segmenter in segmenters.values():
        segmenter.close()
    shutil.rmtree(work, ignore_errors=True)  # the photos and masks this run wrote into its own temp folder
    return 0


if __name__ == "__main__":
    sys.exit(main())
