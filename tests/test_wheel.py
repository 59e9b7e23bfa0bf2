"""``make wheel``: the wheel a Pi installs carries the edge extra, the CLI and doctor's tiny models.

Built offline from a copy of the source (so the checkout gets no build/ or
egg-info), with the setuptools already installed; about a second.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("setuptools", minversion="77")  # reads the SPDX license string
pytest.importorskip("wheel")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "segedge", src / "segedge", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--wheel-dir", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheels = list(out.glob("segedge-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(archive.read(name))


def test_wheel_lists_the_edge_and_camera_extras(wheel):
    meta = _metadata(wheel)
    assert {"edge", "camera"} <= set(meta.get_all("Provides-Extra"))
    edge = [r for r in meta.get_all("Requires-Dist") if r.endswith('extra == "edge"')]
    names = sorted(r.split("<")[0].split(">")[0].split("!")[0].split("=")[0].strip() for r in edge)
    assert names == ["ai-edge-litert", "onnxruntime"]
    assert any("onnxruntime" in r and "!=1.21.0" in r for r in edge)  # the wheel that dies on a Pi 4


def test_wheel_carries_the_cli_and_doctor_models(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert {"segedge/bench/doctor_models/tiny.tflite", "segedge/bench/doctor_models/tiny.onnx",
            "segedge/commands/doctor.py", "segedge/bench/doctor.py"} <= names
    assert "segedge = segedge.cli:main" in entry_points
    assert wheel.name.endswith("-py3-none-any.whl")  # pure Python: the same file installs on aarch64
