"""benchmarks/bench_serve.py runs at its smallest settings and prints its three tables (no timing asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="segedge serve needs the serve extra: pip install 'segedge[serve]'")
pytest.importorskip("cv2")

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_bench_serve_prints_uploads_stream_and_soak(micro_bundle):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_serve.py", str(micro_bundle), "--format", "fp32", "--threads", "1",
         "--clients", "1,2", "--requests", "4", "--max-seconds", "10", "--video-frames", "12",
         "--soak-seconds", "3", "--sample-seconds", "1", "--soak-rate", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "| clients | answers | 200 | 503 | other | req/s | p50 ms | p99 ms |" in out
    table = out.split("| clients |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in table]
    assert [row[:3] for row in cells] == [["1", "4", "4"], ["2", "4", "4"]], out  # 4 answers each, all 200
    assert "| predict --camera " in out and "| serve --camera --no-pace " in out and "target: serve >=" in out
    assert "Soak:" in out and "growth" in out and "RSS MB" in out
