"""One photo at its own size, 0.3 to 12 MP: wall time and peak memory of the whole predict, per child process.

For each photo size (default 640x480, 1920x1080 and 4056x3040 JPEGs of a
synthetic scene, smooth like a photo: not noise, which makes every block of
the mask a boundary) and each ``--upsample`` mode, a fresh child process
loads the bundle, warms it up on a small photo, reads its resident memory
(the idle predictor), resets the high-water mark and runs
``predict_files`` on the one photo as ``segedge predict PHOTO --out DIR``
does (decode + EXIF, model, full-size mask, mask PNG, overlay JPEG). The
child reports the wall time of that call and its peak RSS (``VmHWM``); the
peak above idle over the photo's pixels is the bytes per pixel the path
costs. ``--cli`` adds the whole ``segedge predict`` process as a user runs
it (wall, and its ``VmHWM`` at exit), interpreter start and model load
included.

``--old DIR`` runs the same rows on another checkout's ``segedge`` (its
folder goes first on ``PYTHONPATH``), alternating with this one round by
round, so before and after come from the same run:

    git worktree add /tmp/old HEAD   # the code before a change
    python benchmarks/bench_large_photo.py BUNDLE --old /tmp/old

The floor rows are measured in this process on the same photos: decoding
the JPEG, writing the child's mask PNG (palette, the level
``segedge.edge.postprocess`` uses) and encoding its overlay JPEG; the
zlib-level table writes the largest photo's mask at levels 1, 3, 6 and 9.
Medians over ``--rounds``; the peak is the largest round's. Linux only
(``/proc/self/status``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch import scratch_folder  # noqa: E402
from tables import print_markdown_table  # noqa: E402

from segedge.data.synth import make_sample  # noqa: E402
from segedge.edge.postprocess import MASK_PNG_LEVEL  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MB = 1 << 20
SCENE = 1024  # long side the scene is drawn at before the smooth (bicubic) resize to each size

CHILD = r"""
import json, sys, time
from pathlib import Path

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0

bundle, photo, small, out, mode, overlay, threads, artifact = sys.argv[1:9]
import segedge
from segedge.edge.predictor import load
from segedge.edge.runner import predict_files
from segedge.edge.sources import resolve_inputs

segmenter = load(bundle, threads=int(threads), artifact=artifact, upsample=mode)
overlay = overlay == "1"
for index in range(2):  # warm up: the runtime's arenas, PIL's and numpy's first calls
    predict_files(segmenter, resolve_inputs([small]).sources, Path(out) / f"warm{index}", overlay=overlay, single=True)
idle = status("VmRSS")
try:
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    reset = True
except OSError:
    reset = False
start = time.perf_counter()
result = predict_files(segmenter, resolve_inputs([photo]).sources, Path(out) / "out", overlay=overlay, single=True)
wall = time.perf_counter() - start
assert len(result.images) == 1, result.failed
print(json.dumps({"wall_s": wall, "idle": idle, "peak": status("VmHWM"), "reset": reset,
                  "segedge": segedge.__file__}))
"""


def parse_size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def scene_photo(size: tuple[int, int], seed: int = 0, grain: float = 0.0) -> tuple[Image.Image, Image.Image]:
    """A synthetic scene (``segedge data synth``'s generator) enlarged smoothly to ``size``, and its truth
    (the palette mask, enlarged nearest).

    ``grain``: the standard deviation of pixel noise added at full size, as a sensor adds it: a JPEG of a
    smooth drawing decodes several times faster than a photo's; the model, at its own size, sees the
    grain averaged away, so the mask's boundaries stay the scene's."""
    rng = np.random.default_rng(seed)
    photo, truth = make_sample(rng, SCENE, max_shapes=4)
    photo = photo.resize(size, Image.BICUBIC)
    if grain:
        pixels = np.asarray(photo, dtype=np.float32)
        for row in range(0, size[1], 256):  # in bands: a 12 MP float copy would be 150 MB
            band = pixels[row : row + 256]
            band += rng.normal(0.0, grain, band.shape).astype(np.float32)
        photo = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")
    return photo, truth.resize(size, Image.NEAREST)


def write_photo(path: Path, size: tuple[int, int], seed: int = 0, grain: float = 0.0) -> Path:
    """``scene_photo``'s picture as a JPEG, quality 90."""
    scene_photo(size, seed, grain)[0].save(path, format="JPEG", quality=90)
    return path


def run_child(code_root: Path, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code_root))
    done = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, check=False,
                          cwd=tempfile.gettempdir())  # not this checkout: -c puts the working folder first on sys.path
    if done.returncode != 0:
        sys.exit(f"child failed ({code_root}):\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(got["segedge"]).resolve().is_relative_to(code_root):
        sys.exit(f"the child imported {got['segedge']}, not {code_root}'s segedge")
    return got


CLI = r"""
import atexit, os, sys

def peak():  # VmHWM belongs to this program's memory since exec: ru_maxrss would count the parent's fork too
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(os.environ["SEGEDGE_BENCH_PEAK"], "w").write(line.split()[1])

atexit.register(peak)
from segedge.cli import main
sys.argv[0] = "segedge"
sys.exit(main())
"""


def run_cli(code_root: Path, args: list[str], peak_file: Path) -> tuple[float, int]:
    """The whole ``segedge predict`` process: (wall s, peak RSS bytes), interpreter start and model load included."""
    env = dict(os.environ, PYTHONPATH=str(code_root), SEGEDGE_BENCH_PEAK=str(peak_file))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, *args], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"segedge predict failed ({code_root}):\n{done.stderr[-3000:]}")
    return wall, int(peak_file.read_text()) * 1024


def timed(function, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def floors(photo: Path, mask_png: Path, overlay_jpg: Path, rounds: int) -> dict[str, float]:
    """Seconds of the unavoidable work for this photo, in this process: decode, mask PNG write, overlay encode."""
    mask = Image.open(mask_png)
    mask.load()
    shown = Image.open(overlay_jpg).convert("RGB")

    def decode() -> None:
        with Image.open(photo) as image:
            image.load()

    return {"JPEG decode": timed(decode, rounds),
            "mask PNG write": timed(lambda: mask.save(io.BytesIO(), format="PNG", compress_level=MASK_PNG_LEVEL),
                                    rounds),
            "overlay encode": timed(lambda: shown.save(io.BytesIO(), format="JPEG", quality=90), rounds)}


STAGES = ("decode + orient", "resize + tensor", "invoke", "full-size mask", "class fractions", "mask PNG",
          "overlay", "overlay JPEG")


def stage_table(bundle: Path, photo: Path, modes: list[str], threads: int, rounds: int,
                artifact: str) -> list[list[str]]:
    """This checkout's predict of one photo split at its seams, in this process (median ms per stage)."""
    from segedge.contract.preprocess import resize_uint8
    from segedge.data.images import read_upright
    from segedge.edge.postprocess import save_image, save_mask
    from segedge.edge.predictor import load

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for mode in modes:
            segmenter = load(bundle, threads=threads, artifact=artifact, upsample=mode)
            samples: list[list[float]] = []
            for _ in range(rounds + 1):  # the first is a warm-up
                clock = [time.perf_counter()]
                image = read_upright(photo)
                clock.append(time.perf_counter())
                pixels, placement = resize_uint8(image, segmenter.manifest.preprocess)
                clock.append(time.perf_counter())
                raw = segmenter.infer_raw(pixels)
                clock.append(time.perf_counter())
                mask = segmenter.mask_from(raw, placement, image.size)
                clock.append(time.perf_counter())
                segmenter.fractions(mask)
                clock.append(time.perf_counter())
                save_mask(Path(folder) / "mask.png", mask, segmenter.manifest.palette)
                clock.append(time.perf_counter())
                shown = segmenter.overlay(image, mask)
                clock.append(time.perf_counter())
                save_image(Path(folder) / "overlay.jpg", shown)
                clock.append(time.perf_counter())
                samples.append([b - a for a, b in zip(clock, clock[1:], strict=False)])
                del image, mask, shown
            segmenter.close()
            split = [statistics.median(sample[i] for sample in samples[1:]) for i in range(len(STAGES))]
            rows += [[mode, stage, f"{1000 * seconds:.1f}"] for stage, seconds in zip(STAGES, split, strict=True)]
            rows.append([mode, "sum", f"{1000 * sum(split):.1f}"])
    return rows


def level_table(mask_png: Path, rounds: int) -> list[list[str]]:
    mask = Image.open(mask_png)
    mask.load()
    rows = []
    for level in (1, 3, 6, 9):
        buffer = io.BytesIO()
        seconds = timed(lambda level=level, buffer=buffer: (buffer.seek(0), buffer.truncate(),
                                                            mask.save(buffer, format="PNG", compress_level=level)),
                        rounds)
        rows.append([str(level), f"{buffer.tell() / 1024:.0f}", f"{1000 * seconds:.1f}",
                     "yes" if level == MASK_PNG_LEVEL else ""])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--sizes", default="640x480,1920x1080,4056x3040", help="photo sizes WxH, comma list")
    parser.add_argument("--modes", default="logits,mask", help="--upsample modes to run [logits,mask]")
    parser.add_argument("--format", default="int8", help="the bundle's artifact to run [int8]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="children per row [3]")
    parser.add_argument("--old", type=Path, help="another checkout's folder: its segedge runs the same rows")
    parser.add_argument("--cli", action="store_true", help="also time the whole segedge predict process")
    parser.add_argument("--no-overlay", action="store_true", help="the rows write the mask only")
    parser.add_argument("--grain", type=float, default=8.0,
                        help="sensor-like pixel noise (std, 0-255 levels) in the photos [8]: a photo's decode cost")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    codes = [("after", ROOT)] + ([("before", args.old.resolve())] if args.old else [])
    work = scratch_folder("segedge-large-")
    small = write_photo(work / "small.jpg", (160, 120), seed=1)
    photos = {size: write_photo(work / f"photo_{size[0]}x{size[1]}.jpg", size, grain=args.grain) for size in sizes}
    overlay = "0" if args.no_overlay else "1"
    figures: dict[tuple[str, tuple[int, int], str], list[dict]] = {}
    cli: dict[tuple[str, tuple[int, int], str], list[tuple[float, int]]] = {}
    written: dict[tuple[int, int], Path] = {}
    for round_ in range(args.rounds):
        order = codes if round_ % 2 == 0 else codes[::-1]
        for size, photo in photos.items():
            for mode in modes:
                for label, root in order:
                    out = work / f"{label}-{size[0]}-{mode}-{round_}"
                    print(f"round {round_ + 1}: {label} {size[0]}x{size[1]} {mode}", file=sys.stderr)
                    got = run_child(root, [str(args.bundle), str(photo), str(small), str(out), mode, overlay,
                                           str(args.threads), args.format])
                    figures.setdefault((label, size, mode), []).append(got)
                    if label == "after" and mode == modes[0]:
                        written[size] = out / "out"
                    if args.cli:
                        cli_out = work / f"cli-{label}-{size[0]}-{mode}-{round_}"
                        command = ["predict", str(args.bundle), str(photo), "--out", str(cli_out),
                                   "--format", args.format, "--threads", str(args.threads), "--upsample", mode]
                        cli.setdefault((label, size, mode), []).append(
                            run_cli(root, command + (["--no-overlay"] if args.no_overlay else []), work / "peak"))
    rows, document = [], []
    for (label, size, mode), runs in figures.items():
        pixels = size[0] * size[1]
        wall = statistics.median(run["wall_s"] for run in runs)
        idle = statistics.median(run["idle"] for run in runs)
        peak = max(run["peak"] for run in runs)
        above = max(run["peak"] - run["idle"] for run in runs)
        row = [label, f"{size[0]}x{size[1]}", f"{pixels / 1e6:.1f}", mode, f"{1000 * wall:.0f}", f"{idle / MB:.0f}",
               f"{peak / MB:.0f}", f"{above / MB:.0f}", f"{above / pixels:.1f}"]
        entry = {"code": label, "size": list(size), "mode": mode, "wall_s": wall, "idle_rss": idle, "peak_rss": peak,
                 "above_idle": above, "bytes_per_pixel": above / pixels}
        if args.cli:
            cli_runs = cli[(label, size, mode)]
            cli_wall, cli_peak = statistics.median(w for w, _ in cli_runs), max(p for _, p in cli_runs)
            row += [f"{1000 * cli_wall:.0f}", f"{cli_peak / MB:.0f}"]
            entry.update(cli_wall_s=cli_wall, cli_peak_rss=cli_peak)
        rows.append(row)
        document.append(entry)
    head = ["code", "photo", "MP", "upsample", "wall ms", "idle RSS MB", "peak RSS MB", "above idle MB", "B/pixel"]
    if args.cli:
        head += ["cli wall ms", "cli peak MB"]
    print(f"predict_files on one JPEG{' (mask only)' if args.no_overlay else ' (mask PNG + overlay JPEG)'}, "
          f"{args.format}, {args.threads} threads, {args.rounds} children per row: median wall, largest peak")
    print_markdown_table(head, rows)
    print()
    floor_rows, floor_sums = [], {}
    for size, photo in photos.items():
        stem = photo.stem
        found = floors(photo, written[size] / f"{stem}.png", written[size] / f"{stem}_overlay.jpg", 5)
        floor_sums[size] = sum(found.values())
        floor_rows += [[f"{size[0]}x{size[1]}", name, f"{1000 * seconds:.1f}"] for name, seconds in found.items()]
        floor_rows.append([f"{size[0]}x{size[1]}", "sum", f"{1000 * floor_sums[size]:.1f}"])
    print("floors (this process, same photos, median of 5)")
    print_markdown_table(["photo", "work", "ms"], floor_rows)
    print()
    largest = max(sizes, key=lambda s: s[0] * s[1])
    print(f"stages of one {largest[0]}x{largest[1]} predict (this checkout, this process, median of 3)")
    print_markdown_table(["upsample", "stage", "ms"], stage_table(args.bundle, photos[largest], modes, args.threads, 3,
                                                                  args.format))
    print()
    print(f"mask PNG zlib level, {largest[0]}x{largest[1]} mask (median of 3)")
    print_markdown_table(["level", "KB", "ms", "used"],
                         level_table(written[largest] / f"{photos[largest].stem}.png", 3))
    print()
    after = {(size, mode): statistics.median(run["wall_s"] for run in figures[("after", size, mode)])
             for size in sizes for mode in modes}
    checks = []
    for mode in modes:
        above = max(run["peak"] - run["idle"] for run in figures[("after", largest, mode)])
        checks.append([f"peak above idle, {largest[0]}x{largest[1]}, {mode}", f"{above / MB:.0f} MB", "<= 250 MB",
                       "yes" if above <= 250 * MB else "no"])
        ratio = after[(largest, mode)] / floor_sums[largest]
        checks.append([f"wall / floors, {largest[0]}x{largest[1]}, {mode}", f"{ratio:.2f}", "<= 2",
                       "yes" if ratio <= 2 else "no"])
        if args.old:
            smallest = min(sizes, key=lambda s: s[0] * s[1])
            before = statistics.median(run["wall_s"] for run in figures[("before", smallest, mode)])
            checks.append([f"wall after / before, {smallest[0]}x{smallest[1]}, {mode}",
                           f"{after[(smallest, mode)] / before:.2f}", "<= 1 (noise: +-10 %)",
                           "yes" if after[(smallest, mode)] <= before * 1.1 else "no"])
    print_markdown_table(["target", "measured", "bound", "within"], checks)
    if args.json:
        args.json.write_text(json.dumps({"rows": document, "floors_s": {f"{s[0]}x{s[1]}": v
                                                                        for s, v in floor_sums.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
