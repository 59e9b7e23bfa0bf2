"""The arm64 check's serve step (``serve_check.py``, a heredoc in scripts/arm64_check.sh), run here on the host.

The check itself needs root, qemu and minutes; this runs the very text it runs inside the arm64 root,
so a broken step is found on any machine: serve answers one POST /v1/segment with the mask predict
wrote for the same file, and stops with exit 0 on SIGTERM.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segedge.cli import app

pytest.importorskip("starlette", reason="segedge serve needs the serve extra: pip install 'segedge[serve]'")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "arm64_check.sh"


def serve_check_text() -> str:
    match = re.search(r"cat >\"\$WORK/serve_check.py\" <<'PY'\n(.*?)\nPY\n", SCRIPT.read_text(), re.S)
    assert match, "scripts/arm64_check.sh has no serve_check.py heredoc"
    return match.group(1)


def test_the_arm64_serve_step_passes_here(micro_bundle, tmp_path):
    assert "pip install '$W[edge,camera,serve]'" in SCRIPT.read_text()
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.zeros((50, 70, 3), np.uint8)
    pixels[10:40, 20:60] = (200, 40, 40)
    Image.fromarray(pixels).save(images / "photo.jpg", quality=95)
    masks = tmp_path / "masks" / "int8"
    result = CliRunner().invoke(app, ["predict", str(micro_bundle), str(images), "--format", "int8", "--threads", "1",
                                      "--no-overlay", "--out", str(masks)])
    assert result.exit_code == 0, result.output
    check = tmp_path / "serve_check.py"
    check.write_text(serve_check_text())
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(check), str(micro_bundle), str(images / "photo.jpg"),
                           str(masks / "photo.png")], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100.000 % equal to predict's" in done.stdout and "serve check passed" in done.stdout
