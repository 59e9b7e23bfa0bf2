"""A CI-sized soak: ``segedge serve`` with a looping camera, a viewer and steady uploads keeps its RSS flat.

The bound is the one ``benchmarks/bench_serve.py`` reports against over 30 minutes: at most 5 MB of
growth after the warm-up. Here the video is short and not paced, so the source is opened again about
once a second (each time with fresh pipeline threads, the case that grew memory before the arena
limit), and uploads arrive several times a second, so a per-frame, per-request or per-reconnection
leak shows within half a minute.
"""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import pytest
from test_serve_api import ServeProcess, jpeg_bytes, write_video

pytestmark = pytest.mark.slow

SOAK_S = 30.0
WARMUP_S = 12.0
BOUND_MB = 5.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc (Linux)")
def test_rss_stays_flat_over_a_short_soak(micro_bundle, tmp_path):
    clip = write_video(tmp_path / "clip.avi", frames=40, size=(160, 120))
    server = ServeProcess(micro_bundle, "--format", "fp32", "--camera", str(clip), "--no-pace")
    done = threading.Event()

    def view() -> None:
        viewer = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        viewer.request("GET", "/v1/stream.mjpg")
        response = viewer.getresponse()
        while not done.is_set() and response.read(16384):
            pass
        viewer.close()

    viewer = threading.Thread(target=view, daemon=True)
    try:
        viewer.start()
        photo = jpeg_bytes((320, 240))
        uploads = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        samples = []
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < SOAK_S:
            uploads.request("POST", "/v1/segment", body=photo)
            assert uploads.getresponse().read() and True
            samples.append((elapsed, rss_mb(server.process.pid)))
            time.sleep(0.2)
        uploads.close()
    finally:
        done.set()
        server.stop()
        viewer.join(5)
    warm = next(rss for t, rss in samples if t >= WARMUP_S)
    end = samples[-1][1]
    assert end - warm <= BOUND_MB, f"RSS {warm:.1f} MB after {WARMUP_S:g} s, {end:.1f} MB after {SOAK_S:g} s"
