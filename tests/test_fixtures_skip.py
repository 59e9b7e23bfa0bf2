"""On an edge install (no TensorFlow) the model-building fixtures skip with a reason instead of erroring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_no_tensorflow import BLOCKER

ROOT = Path(__file__).resolve().parents[1]


def test_model_fixtures_skip_cleanly_without_tensorflow(tmp_path):
    # A pytest plugin loaded before any test module; an absent package raises ModuleNotFoundError.
    plugin = BLOCKER.replace("raise ImportError(", "raise ModuleNotFoundError(")
    assert plugin != BLOCKER
    (tmp_path / "block_tensorflow.py").write_text(plugin)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    tests = ["tests/test_edge_no_tf.py",  # tiny_bundle -> tiny_run
             "tests/test_bench.py::test_default_gate_passes_the_float_artifacts",
             # micro_run:
             "tests/test_quant_export_flags.py::test_export_rejects_a_bad_fallback_value_before_converting"]
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "block_tensorflow", "-p", "no:cacheprovider",
                             "-q", "-rs", *tests], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 skipped" in result.stdout and "error" not in result.stdout.lower(), result.stdout[-3000:]
    assert result.stdout.count("needs TensorFlow") == 3, result.stdout[-3000:]
