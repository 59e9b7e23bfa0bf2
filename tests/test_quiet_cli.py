"""The ``segedge`` script hides TensorFlow/absl/LiteRT start-up and INFO chatter; ``--verbose`` shows it.

Native code writes these lines to fd 2 directly, so the script filters fd 2 (``segedge.util.quiet.QuietStderr``):
known noise is dropped, every other line (a real C++ error) still reaches the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
XNNPACK_INFO = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    for name in ("SEGEDGE_VERBOSE", "SEGEDGE_DEBUG", "TF_CPP_MIN_LOG_LEVEL"):
        env.pop(name, None)
    return env


def segedge(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The CLI as the ``segedge`` script runs it (``main``), in a fresh process."""
    return subprocess.run([sys.executable, "-c", "from segedge.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, env=script_env())


FILTER_PROBE = r"""
import os, sys
from segedge.util.quiet import QuietStderr
quiet = QuietStderr()
quiet.start()
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            b"I0000 00:00:1796680994.016319    5429 port.cc:153] oneDNN custom operations are on.\n"
            b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
            b"fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: INT8\n"
            b"E0000 00:00:1796680994.1    5429 kernel.cc:12] a real C++ error\n"
            b"ERROR: a LiteRT error\n"
            b"no newline at the end")
print("python stderr", file=sys.stderr)
quiet.stop()
print("after stop", file=sys.stderr)
os.write(2, b"\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
"""


def test_filter_drops_known_noise_and_keeps_the_rest(tmp_path):
    result = subprocess.run([sys.executable, "-c", FILTER_PROBE], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=script_env())
    assert result.returncode == 0, result.stderr
    err = result.stderr
    for noise in ("absl::InitializeLog", "oneDNN", "fully_quantize"):
        assert noise not in err
    for kept in ("a real C++ error", "ERROR: a LiteRT error", "no newline at the end", "python stderr",
                 "after stop"):
        assert kept in err
    assert err.count(XNNPACK_INFO) == 1  # the one written after stop()


@pytest.fixture(scope="module")
def image(synth_root: Path) -> Path:
    return sorted((synth_root / "JPEGImages").iterdir())[0]


def test_predict_hides_the_xnnpack_info_line(micro_bundle: Path, image: Path, tmp_path: Path):
    result = segedge("predict", micro_bundle, image, "--format", "int8", "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "XNNPACK" not in result.stderr
    assert "wrote 1 mask" in result.stdout


def test_verbose_shows_the_xnnpack_info_line(micro_bundle: Path, image: Path, tmp_path: Path):
    result = segedge("--verbose", "predict", micro_bundle, image, "--format", "int8", "--out", tmp_path / "out",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert XNNPACK_INFO in result.stderr


def test_a_real_error_still_shows(micro_bundle: Path, image: Path, tmp_path: Path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3" + b"\0" * 60)
    result = segedge("predict", broken, image, "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode != 0
    assert "error:" in result.stderr


@pytest.mark.slow
def test_export_hides_tensorflow_and_converter_chatter(micro_run: Path, tmp_path: Path):
    result = segedge("export", micro_run, "--out", tmp_path / "bundle", "--format", "int8", "--calib-images", "2",
                     "--eval-images", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for noise in ("oneDNN", "absl::InitializeLog", "fully_quantize", "XNNPACK", "cpu_feature_guard"):
        assert noise not in result.stderr
    assert "int8:" in result.stderr  # export's own progress line still shows
