"""Frames per second of ``segedge predict --camera VIDEO``'s loop, next to what the model alone allows.

The camera target: with the model on all cores, the pipelined camera loop
(``segedge.edge.camera.run_camera``: capture/decode, inference and writing
in their own threads, bounded queues) sustains at least 0.9 x (1000 / invoke
p50) frames per second. A 640x480 MJPG video of synthetic scenes is written
first; then, in interleaved rounds (order rotating each round):

* ``invoke``: the bare runtime call on a prepared tensor, ``--frames`` times
  (its p50 gives the bound), on the artifact opened as bench opens it;
* ``pipelined``: ``run_camera`` on the video as ``predict --camera`` runs a
  file (a full queue waits: no frame lost), saving mask + overlay every
  ``--every`` frames, on the artifact opened as predict opens it for a video
  file: one copy of the model per thread (``--copies``), onnxruntime's idle
  threads not spinning;
* ``pipelined, 1 copy``: the same with one copy on all the threads (predict's
  choice for a live camera, and the loop before ``--copies``);
* ``pipelined, live``: one copy with the live-camera policy (a full queue
  drops its oldest frame), with the drop count;
* ``sequential``: the same work in one thread (read, convert, predict, draw
  and save), the loop before the threaded pipeline, for scale.

    python benchmarks/bench_camera.py BUNDLE [--format int8] [--frames 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from photos import write_photo  # noqa: E402
from scratch import scratch_folder  # noqa: E402
from tables import print_markdown_table  # noqa: E402

from segedge.bench.stats import NS_PER_MS  # noqa: E402
from segedge.commands.predict import stream_copies  # noqa: E402
from segedge.contract.preprocess import resize_uint8  # noqa: E402
from segedge.edge.camera import (  # noqa: E402
    CameraOptions,
    _save_frame,
    cv2_module,
    frame_to_rgb,
    open_capture,
    run_camera,
)
from segedge.edge.predictor import Segmenter, default_threads, load  # noqa: E402

BOUND = 0.9  # fps >= 0.9 x 1000 / invoke p50
SIZE = (640, 480)


def write_video(path: Path, frames: int, scenes: int = 6) -> Path:
    """``frames`` frames cycling through ``scenes`` synthetic pictures, each panned a little per frame."""
    cv2 = cv2_module()
    folder = path.parent
    pictures = [cv2.imread(str(write_photo(folder / f"scene_{i}.jpg", seed=100 + i, size=(SIZE[0] + 64, SIZE[1]))))
                for i in range(scenes)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, SIZE)
    if not writer.isOpened():
        sys.exit("this OpenCV cannot write MJPG video")
    for index in range(frames):
        shift = (index * 4) % 64
        writer.write(np.ascontiguousarray(pictures[(index // 10) % scenes][:, shift : shift + SIZE[0]]))
    writer.release()
    return path


def sequential(segmenter: Segmenter, video: Path, out: Path, every: int) -> tuple[int, float]:
    """The single-threaded loop: frames and seconds."""
    cv2 = cv2_module()
    capture = open_capture(str(video))
    frames, start = 0, time.perf_counter()
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = frame_to_rgb(cv2, frame)
            mask = segmenter.predict(rgb)
            if frames % every == 0:
                _save_frame(out / f"frame_{frames:06d}", mask, segmenter.overlay(rgb, mask), segmenter)
            frames += 1
    finally:
        capture.release()
    return frames, time.perf_counter() - start



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--format", default=None, help="artifact (default: the bundle's default, int8 first)")
    parser.add_argument("--threads", type=int, default=default_threads(), help="model threads [all cores]")
    parser.add_argument("--frames", type=int, default=60, help="frames in the test video [60]")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, default=10, help="save mask + overlay every Nth frame [10]")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    work = scratch_folder("segedge-camera-")
    video = write_video(work / "clip.avi", args.frames)
    segmenter = load(args.bundle, threads=args.threads, artifact=args.format)  # the model alone: as bench times it
    # as predict --camera opens a video file (one copy per thread) and a live camera (one copy)
    looping = load(args.bundle, threads=args.threads, artifact=args.format, spin=False,
                   copies=stream_copies(None, args.threads, str(video)))
    single = load(args.bundle, threads=args.threads, artifact=args.format, spin=False)
    cv2 = cv2_module()
    capture = open_capture(str(video))
    _, first = capture.read()
    capture.release()
    pixels, _ = resize_uint8(Image.fromarray(frame_to_rgb(cv2, first)), segmenter.manifest.preprocess)
    tensor = segmenter.backend.prepare(pixels[None])
    for _ in range(5):
        segmenter.backend.invoke(tensor)
    kinds = ["invoke", "pipelined", "pipelined, 1 copy", "pipelined, live", "sequential"]
    invoke_ms: list[float] = []
    fps: dict[str, list[float]] = {kind: [] for kind in kinds[1:]}
    dropped: dict[str, list[int]] = {kind: [] for kind in kinds[1:]}
    print(f"{len(kinds)} rows x {args.rounds} rounds, {args.frames} frames each", file=sys.stderr)
    for round_ in range(args.rounds):
        for kind in kinds[round_ % len(kinds):] + kinds[: round_ % len(kinds)]:
            out = work / f"out-{round_}-{kinds.index(kind)}"
            out.mkdir()
            if kind == "invoke":
                for _ in range(args.frames):
                    start = time.perf_counter_ns()
                    segmenter.backend.invoke(tensor)
                    invoke_ms.append((time.perf_counter_ns() - start) / NS_PER_MS)
            elif kind == "sequential":
                frames, seconds = sequential(single, video, out, args.every)
                fps[kind].append(frames / seconds)
                dropped[kind].append(0)
            else:
                options = CameraOptions(out=out, every=args.every, drop=kind.endswith("live"))
                chosen = looping if kind == "pipelined" else single
                summary = run_camera(chosen, open_capture(str(video)), str(video), options, stderr=io.StringIO(),
                                     stdout=io.StringIO())
                fps[kind].append(summary.fps)
                dropped[kind].append(summary.dropped)
    p50 = statistics.median(invoke_ms)
    bound = BOUND * 1000.0 / p50
    print(f"{segmenter.describe()}; pipelined: {looping.describe()};")
    print(f"{args.frames} frames {SIZE[0]}x{SIZE[1]} MJPG, mask + overlay saved every {args.every}; "
          f"invoke p50 {p50:.3f} ms -> model alone {1000 / p50:.1f} fps; medians of {args.rounds} "
          "rounds")
    rows = []
    for kind in kinds[1:]:
        value = statistics.median(fps[kind])
        rows.append([kind, f"{value:.1f}", f"{bound:.1f}", "yes" if value >= bound else "no",
                     f"{value * p50 / 1000:.2f}", str(int(statistics.median(dropped[kind])))])
    print_markdown_table(["loop", "fps", "bound (0.9 x 1000/p50)", "within", "x model-alone fps",
                          "dropped (median)"], rows)
    if args.json:
        args.json.write_text(json.dumps({"invoke_p50_ms": p50, "bound_fps": bound,
                                         "fps": {k: statistics.median(v) for k, v in fps.items()},
                                         "dropped": dropped}, indent=2))
    for opened in (segmenter, looping, single):
        opened.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
