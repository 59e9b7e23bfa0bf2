#!/usr/bin/env python
"""Which model for my device: a small grid of encoders x widths x input sizes, trained, exported int8, benched together.

Generates a synthetic dataset, trains one run per (``--widths`` x ``--sizes``, plus
each MobileNetV3 in ``--encoders`` at width 1.0)
for a few epochs, exports each to int8 TFLite, then runs
``segedge bench B1 B2 ... --out WORK/report`` once over all the bundles (each
artifact in its own process, at 1 thread and every core) and prints the
frontier table: mIoU, int8 p50 at 1 and all threads, file size, peak RSS, and
whether the row is on the frontier at all cores. With two or more sizes and
widths 0.35 and 1.0 at the same size it also prints the p50 ratio of width 1.0
to width 0.35 at that size (the "0.35 is >= 3x faster" check).

The models are barely trained (minutes on a laptop CPU): mIoU here shows the
mechanics, not what a width reaches on real data. Latency does not depend on
the training, so those figures stand.

Examples::

    python benchmarks/bench_frontier.py                                  # 0.35,1.0 x 96,224; ~10 min on 2 cores
    python benchmarks/bench_frontier.py --widths 0.35,0.5,0.75,1.0 --sizes 160,224 --epochs 3 --budget-ms 5
    python benchmarks/bench_frontier.py --encoders mobilenet_v2,mobilenet_v3_small,mobilenet_v3_large --sizes 224
    python benchmarks/bench_frontier.py --widths 0.35,1.0 --sizes 32,64 --images 24 --runs 5   # seconds (smoke)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tables import print_markdown_table  # noqa: E402  (benchmarks/ is the script's own folder)

from segedge.bench.multi_report import encoder_label  # noqa: E402

SEGEDGE = [sys.executable, "-c", "from segedge.cli import main; main()"]


def segedge(*args: str, quiet: bool = True) -> None:
    """One segedge command; its output shown only when it fails (then the script stops)."""
    started = time.perf_counter()
    done = subprocess.run([*SEGEDGE, *map(str, args)], capture_output=quiet, text=True, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    print(f"  segedge {args[0]} ... {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if done.returncode not in (0, 7):  # 7: a parity gate failed; the table still says so
        if quiet:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"segedge {' '.join(map(str, args[:2]))} failed (exit {done.returncode})")


def parse_list(text: str, kind=float) -> list:
    return [kind(part.strip()) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="0.35,1.0", help="MobileNetV2 widths, comma list (0.35, 0.5, 0.75, 1.0)")
    parser.add_argument("--encoders", default="mobilenet_v2",
                        help="comma list: mobilenet_v2 (at --widths), mobilenet_v3_small, mobilenet_v3_large (at 1.0)")
    parser.add_argument("--sizes", default="96,224", help="square input sizes, comma list (multiples of 32)")
    parser.add_argument("--images", type=int, default=64, help="synthetic image/mask pairs")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="training steps per epoch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per artifact and thread count")
    parser.add_argument("--eval-images", type=int, default=8, help="reference images per bundle (the same ids)")
    parser.add_argument("--budget-ms", type=float, default=None, help="also pick the best artifact under this p50")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/segedge-frontier"),
                        help="where the data, runs, bundles and report go (reused: existing runs are kept)")
    args = parser.parse_args()
    widths, sizes = parse_list(args.widths), parse_list(args.sizes, int)
    encoders = parse_list(args.encoders, str)
    grid = [("mobilenet_v2", w) for w in widths if "mobilenet_v2" in encoders]
    grid += [(e, 1.0) for e in encoders if e != "mobilenet_v2"]
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    if not data.exists():
        segedge("data", "synth", data, "--images", args.images, "--size", max(sizes), "--seed", 0)
    bundles = []
    for size in sizes:
        for encoder, width in grid:
            prefix = "" if encoder == "mobilenet_v2" else encoder.replace("mobilenet_", "").replace("_", "-") + "-"
            name = f"{prefix}w{width:g}-{size}px"
            run, bundle = work / "runs" / name, work / "bundles" / name
            if not (run / "model.keras").is_file():
                segedge("train", data, "--out", run, "--image-size", size, "--encoder", encoder,
                        "--encoder-width", width,
                        "--epochs", args.epochs, "--steps-per-epoch", args.steps, "--validation-steps", 2,
                        "--batch-size", args.batch_size, "--patience", args.epochs, "--overwrite")
            if not (bundle / "manifest.json").is_file():
                segedge("export", run, "--out", bundle, "--format", "int8", "--calib-images", 16,
                        "--eval-images", args.eval_images, "--overwrite")
            bundles.append(bundle)
    report = work / "report"
    budget = ["--budget-ms", args.budget_ms] if args.budget_ms else []
    segedge("bench", *bundles, "--out", report, "--runs", args.runs, "--warmup", 5, "--e2e-images", 2,
            "--no-keras", "--gallery", 0, "--overwrite", *budget)
    print_frontier(json.loads((report / "report.json").read_text()))


def print_frontier(report: dict) -> None:
    rows = report["rows"]
    threads = sorted({r["threads"] for r in rows})
    most = threads[-1]
    by_bundle: dict[str, dict[int, dict]] = {}
    for row in rows:
        by_bundle.setdefault(row["bundle"], {})[row["threads"]] = row
    head = ["model", "encoder", "width", "input", "mIoU %", *(f"int8 p50 ms, {t} thr" for t in threads), "size MB",
            "peak RSS MB", f"frontier ({most} thr)"]

    def num(value, digits=2, scale=1.0):
        return "n/a" if value is None else f"{value * scale:.{digits}f}"

    table = []
    for name, per in by_bundle.items():
        first = per[threads[0]]
        table.append([name, encoder_label(first.get("encoder")), str(first["encoder_width"]), first["input"],
                      num(first["miou"], scale=100.0),
                      *(num(per.get(t, {}).get("p50_ms")) for t in threads), num(first["size_mb"], 2),
                      num(max((r.get("peak_rss_mb") or 0) for r in per.values()), 0),
                      "yes" if per.get(most, {}).get("frontier") else ""])
    machine = report.get("machine", {})
    print(f"\nCPU: {machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores; load average before "
          f"{machine.get('load_average_before')}; {report['eval']}\n")
    print_markdown_table(head, table)
    if report.get("budget"):
        print(f"\n{report['budget']['line']}")
    for size in sorted({r["input"] for r in rows}):
        for t in threads:
            p50 = {r["encoder_width"]: r["p50_ms"] for r in rows
                   if r["input"] == size and r["threads"] == t and r.get("encoder") == "mobilenet_v2"}
            if p50.get(0.35) and p50.get(1.0):
                ratio = p50[1.0] / p50[0.35]
                print(f"{size}, {t} thread{'s' * (t > 1)}: width 1.0 int8 p50 {p50[1.0]:.2f} ms / width 0.35 "
                      f"{p50[0.35]:.2f} ms = {ratio:.2f}x ({'meets' if ratio >= 3 else 'misses'} 3x)")
    for warning in report.get("timing_warnings", []):
        print(f"warning: timings may be disturbed: {warning}")
    for bundle in report["bundles"]:
        if not bundle["gate"]["passed"]:
            print(f"parity gate failed for {bundle['name']}: {'; '.join(bundle['gate']['failures'])}")


if __name__ == "__main__":
    main()
