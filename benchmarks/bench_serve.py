"""``segedge serve`` under load: upload latency and throughput, the stream's pace, memory over a soak.

Three measurements, each against a real server started as a user starts it (``segedge serve``
in a subprocess on a free 127.0.0.1 port), talked to over HTTP:

* uploads: ``POST /v1/segment`` of one 640x480 JPEG (JSON answer) from 1, 4 and 16 concurrent
  clients (``--clients``), each on its own keep-alive connection, until ``--requests`` answers or
  ``--max-seconds`` per row; requests per second, p50 / p99 latency, and the 503s (the server's
  queue, ``--queue``, is sized for the largest row, so a 503 means the bound was hit);
* stream: the same 640x480 MJPG video through ``segedge predict --camera VIDEO`` (its own summary
  line's fps) and through ``segedge serve --camera VIDEO --no-pace`` (the video's first pass, timed
  by the feed as predict times its loop, read from /healthz), same ``--threads`` and ``--copies``;
  the target is serve >= 0.9x predict;
* soak: ``serve --camera VIDEO`` (paced, looping) watched by one MJPEG viewer, plus one upload client at ``--soak-rate``
  requests a second for ``--soak-seconds``; the server's RSS (VmRSS) sampled every
  ``--sample-seconds``; growth is the last sample less the one at the end of the warm-up
  (the first fifth, at least 10 s). The bound: <= 5 MB. Use ``--soak-seconds 1800`` for the 30 minutes.

    python benchmarks/bench_serve.py BUNDLE [--format int8] [--threads 2] [--requests 200] [--soak-seconds 60]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_camera import write_video  # noqa: E402
from photos import write_photo  # noqa: E402
from tables import print_markdown_table  # noqa: E402

SEGEDGE = [sys.executable, "-c", "from segedge.cli import main; main()"]
RSS_BOUND_MB = 5.0
STREAM_BOUND = 0.9
WARMUP_MIN_S = 10.0  # the first overlays, JPEG tables and the allocator's arenas settle in the first seconds


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``segedge serve BUNDLE ARGS`` on a free port; up once /healthz answers."""

    def __init__(self, bundle: Path, args: list[str], log_path: Path) -> None:
        self.port = free_port()
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([*SEGEDGE, "serve", str(bundle), "--port", str(self.port), *args],
                                        stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"segedge serve exited {self.process.returncode}: {log_path.read_text()[-2000:]}")
            try:
                self.get("/healthz")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        sys.exit("segedge serve did not answer /healthz within 120 s")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return json.loads(response.read())

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def connect(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection with Nagle off, as curl and urllib3 open theirs (http.client sends the headers
    and the body in two writes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def post(connection: http.client.HTTPConnection, body: bytes) -> int:
    connection.request("POST", "/v1/segment?format=json", body=body,
                       headers={"Content-Type": "image/jpeg", "Connection": "keep-alive"})
    response = connection.getresponse()
    response.read()
    return response.status


def upload_row(server: Server, photo: bytes, clients: int, requests: int, max_seconds: float) -> list[str]:
    """``clients`` threads sharing ``requests`` uploads; latency of every answer, 200 or not."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    left = [requests]
    stop_at = time.monotonic() + max_seconds

    def client() -> None:
        connection = connect(server.port)
        while time.monotonic() < stop_at:
            with lock:
                if left[0] <= 0:
                    break
                left[0] -= 1
            start = time.perf_counter()
            try:
                status = post(connection, photo)
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = connect(server.port)
                status = 0
            took = time.perf_counter() - start
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(took)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    ok = statuses.get(200, 0)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))] if ordered else float("nan")
    return [str(clients), str(sum(statuses.values())), str(ok), str(statuses.get(503, 0)),
            str(sum(n for s, n in statuses.items() if s not in (200, 503))), f"{ok / elapsed:.1f}",
            f"{1000 * statistics.median(ordered):.1f}" if ordered else "-", f"{1000 * p99:.1f}"]


def predict_fps(bundle: Path, video: Path, common: list[str]) -> float:
    result = subprocess.run([*SEGEDGE, "predict", str(bundle), "--camera", str(video), *common],
                            capture_output=True, text=True, timeout=1200)
    match = re.search(r"\(([\d.]+) fps\)", result.stderr)
    if result.returncode != 0 or match is None:
        sys.exit(f"segedge predict --camera failed ({result.returncode}): {result.stderr[-2000:]}")
    return float(match.group(1))


def serve_fps(bundle: Path, video: Path, common: list[str], work: Path) -> float:
    """The video's first pass as the feed timed it (``last_session``: pipeline start to close, as predict's
    summary times its loop), read from /healthz (which, unlike the page's /v1/status, does not count as
    someone watching: no overlays are drawn, as in predict)."""
    server = Server(bundle, ["--camera", str(video), "--no-pace", *common], work / "serve_stream.log")
    try:
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            session = server.get("/healthz")["camera"]["last_session"]
            if session is not None:
                return float(session["frames"]) / max(float(session["seconds"]), 1e-9)
            time.sleep(0.1)
        sys.exit("the served video never ended")
    finally:
        server.stop()


def watch_stream(port: int, done: threading.Event) -> None:
    """Read /v1/stream.mjpg until ``done`` (or the server goes away), as an open page does."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/v1/stream.mjpg")
        response = connection.getresponse()
        while not done.is_set() and response.read(65536):
            pass
        connection.close()
    except (OSError, http.client.HTTPException):
        pass


def soak(bundle: Path, video: Path, photo: bytes, common: list[str], seconds: float, rate: float,
         every: float, work: Path) -> tuple[list[tuple[float, float]], int]:
    server = Server(bundle, ["--camera", str(video), *common], work / "serve_soak.log")
    samples: list[tuple[float, float]] = []
    uploads = 0
    viewing = threading.Event()
    viewer = threading.Thread(target=watch_stream, args=(server.port, viewing), daemon=True)
    try:
        viewer.start()  # a browser showing the page: overlays are drawn and sent all along
        connection = connect(server.port)
        start = next_sample = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            if now >= next_sample:
                samples.append((now - start, server.rss_mb()))
                next_sample += every
            if rate > 0:
                uploads += post(connection, photo) == 200
                time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - now)))
            else:
                time.sleep(min(every, 0.5))
        samples.append((time.monotonic() - start, server.rss_mb()))
        frames = server.get("/healthz")["camera"]["frames"]
        log(f"soak: {frames} camera frames, {uploads} uploads")
        connection.close()
    finally:
        viewing.set()
        server.stop()
        viewer.join(5)
    return samples, uploads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--format", dest="artifact", help="artifact to serve (default: as predict picks)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--copies", type=int, help="copies of the model in both predict and serve [--threads]")
    parser.add_argument("--clients", default="1,4,16", help="concurrent upload clients per row")
    parser.add_argument("--requests", type=int, default=200, help="uploads per row at most")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="seconds per upload row at most")
    parser.add_argument("--video-frames", type=int, default=300, help="frames of the 640x480 video")
    parser.add_argument("--soak-seconds", type=float, default=60.0, help="0 skips the soak")
    parser.add_argument("--soak-rate", type=float, default=2.0, help="uploads a second during the soak")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling period")
    parser.add_argument("--skip", default="", help="comma list of uploads,stream,soak to leave out")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",") if c]
    skip = set(filter(None, args.skip.split(",")))
    common = ["--threads", str(args.threads), "--copies", str(args.copies or args.threads)]
    common += ["--format", args.artifact] if args.artifact else []
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as temp:
        work = Path(temp)
        photo = write_photo(work / "photo.jpg", seed=3, size=(640, 480)).read_bytes()
        log(f"writing a {args.video_frames}-frame 640x480 video")
        video = write_video(work / "clip.avi", args.video_frames)
        if "uploads" not in skip:
            server = Server(args.bundle, [*common, "--queue", str(max(clients) + 4)], work / "serve_uploads.log")
            try:
                post(connect(server.port), photo)  # warm-up
                rows = []
                for count in clients:
                    log(f"uploads: {count} client(s)")
                    rows.append(upload_row(server, photo, count, args.requests, args.max_seconds))
            finally:
                server.stop()
            print("POST /v1/segment, 640x480 JPEG -> JSON")
            print_markdown_table(["clients", "answers", "200", "503", "other", "req/s", "p50 ms", "p99 ms"], rows)
            print()
        if "stream" not in skip:
            log("stream: predict --camera")
            predicted = predict_fps(args.bundle, video, common)
            log("stream: serve --camera --no-pace")
            served = serve_fps(args.bundle, video, common, work)
            ratio = served / predicted if predicted else float("nan")
            print(f"Stream, {args.video_frames}-frame 640x480 MJPG video, {' '.join(common)}")
            print_markdown_table(["loop", "fps", "x predict"], [
                ["predict --camera", f"{predicted:.1f}", "1.00"],
                ["serve --camera --no-pace", f"{served:.1f}", f"{ratio:.2f}"]])
            print(f"target: serve >= {STREAM_BOUND}x predict: {'met' if ratio >= STREAM_BOUND else 'NOT met'}")
            print()
        if "soak" not in skip and args.soak_seconds > 0:
            log(f"soak: {args.soak_seconds:g} s")
            samples, _ = soak(args.bundle, video, photo, common, args.soak_seconds, args.soak_rate,
                              args.sample_seconds, work)
            warm_s = max(args.soak_seconds / 5, WARMUP_MIN_S)
            warm = next((rss for t, rss in samples if t >= warm_s), samples[-1][1])
            growth = samples[-1][1] - warm
            print(f"Soak: serve --camera (paced video, looping) + {args.soak_rate:g} uploads/s for "
                  f"{args.soak_seconds:g} s; RSS (VmRSS)")
            print_markdown_table(["t s", "RSS MB"], [[f"{t:.0f}", f"{rss:.1f}"] for t, rss in samples])
            verdict = "met" if growth <= RSS_BOUND_MB else "NOT met"
            peak = max(r for _, r in samples)
            print(f"after warm-up ({warm_s:g} s) {warm:.1f} MB, end {samples[-1][1]:.1f} MB, peak {peak:.1f} MB: "
                  f"growth {growth:+.1f} MB (bound {RSS_BOUND_MB:g} MB: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
