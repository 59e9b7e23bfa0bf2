"""``segedge doctor``: runtimes imported AND run in a subprocess; a crashing wheel is one line and exit 9."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segedge.bench import doctor
from segedge.cli import app
from segedge.util.errors import EdgeUnavailableError, MissingExtraError

pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")


def _run(env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["doctor", "--timeout", "60"], env=env)


def _fake_runtime(root: Path, module: str, body: str) -> dict[str, str]:
    """A package named ``module`` first on PYTHONPATH: the probe subprocess imports it instead of the real one."""
    package = root / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(body, encoding="utf-8")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}


def test_doctor_here_runs_both_runtimes_and_exits_0():
    result = _run()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    tflite = next(line for line in lines if line.split()[1:2] == ["tflite"])
    onnx = next(line for line in lines if line.split()[1:2] == ["onnx"])
    assert tflite.startswith("ok") and "runs a tiny model" in tflite
    assert onnx.startswith("ok") and "runs a tiny model" in onnx
    for name in ("platform", "cores", "memory", "camera", "temperature", "throttling"):
        assert any(line.split()[1:2] == [name] for line in lines), name
    assert lines[-1] == "the edge can run here"


def test_shipped_models_compute_2x_plus_1_in_each_runtime():
    """The probe's expectation is the models' definition (benchmarks/make_doctor_models.py), checked here directly."""
    import numpy as np
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    x = np.array([[0.5, -2.0, 10.0, 3.25]], np.float32)
    session = ort.InferenceSession(str(doctor.MODELS / "tiny.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], [[2.0, -3.0, 21.0, 7.5]])
    interpreter = Interpreter(model_path=str(doctor.MODELS / "tiny.tflite"))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]),
                               [[2.0, -3.0, 21.0, 7.5]])
    assert doctor.EXPECTED == [1.0, 3.0, 5.0, 7.0]


def test_sigill_in_a_runtime_is_one_line_and_exit_9(tmp_path):
    env = _fake_runtime(tmp_path, "onnxruntime", "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n")
    result = _run(env)
    assert result.exit_code == EdgeUnavailableError.exit_code == 9, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "onnx" in errors[0] and "SIGILL" in errors[0] and "onnxruntime!=" in errors[0]
    assert "Traceback" not in result.output


def test_probe_reports_the_known_bad_onnxruntime_release(tmp_path, monkeypatch):
    env = _fake_runtime(tmp_path, "onnxruntime", "import os, signal\nos.kill(os.getpid(), signal.SIGILL)\n")
    monkeypatch.setattr(doctor, "installed_version", lambda *names: "1.21.0")
    check = doctor.probe_runtime("onnx", env={**os.environ, **env})
    assert check.status == "fail" and signal.SIGILL.name in check.detail
    assert "1.21.0" in check.fix and 'pip install "onnxruntime!=1.21.0"' in check.fix


def test_a_runtime_that_hangs_is_killed(tmp_path):
    env = _fake_runtime(tmp_path, "onnxruntime", "import time\ntime.sleep(600)\n")
    check = doctor.probe_runtime("onnx", timeout=2, env={**os.environ, **env})
    assert check.status == "fail" and "hung" in check.detail and "2 s" in check.detail


def test_missing_runtimes_name_the_edge_extra(tmp_path, monkeypatch):
    body = "raise ImportError('No module named onnxruntime (simulated)')\n"
    env = _fake_runtime(tmp_path, "onnxruntime", body)
    for module in ("ai_edge_litert", "tflite_runtime"):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(body, encoding="utf-8")
    result = _run(env)
    assert result.exit_code == MissingExtraError.exit_code == 6, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and 'pip install "segedge[edge]"' in errors[0]
    assert [line.split()[:2] for line in result.output.splitlines() if line.startswith("missing")] == [
        ["missing", "tflite"], ["missing", "onnx"]]


def test_one_missing_runtime_is_not_fatal(tmp_path):
    env = _fake_runtime(tmp_path, "onnxruntime", "raise ImportError('simulated')\n")
    result = _run(env)
    assert result.exit_code == 0, result.output
    assert any(line.startswith("missing onnx") and "segedge[edge]" in line for line in result.output.splitlines())


@pytest.mark.parametrize("machine", ["armv7l", "armv6l"])
def test_32_bit_arm_gets_the_64_bit_os_line(machine):
    check = doctor.platform_check(machine)
    assert check.status == "fail" and "64-bit Raspberry Pi OS" in check.fix and "LiteRT" in check.fix


def test_aarch64_is_fine():
    assert doctor.platform_check("aarch64").status == "ok"


def test_temperature_and_memory_from_fake_files(tmp_path):
    zone = tmp_path / "sys" / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("61326\n")
    (zone / "type").write_text("cpu-thermal\n")
    temperature = doctor.heat_checks(str(tmp_path / "sys"))[0]
    assert temperature.name == "temperature" and temperature.detail == "cpu-thermal 61.3 °C"
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        3884252 kB\nMemFree:          100 kB\nMemAvailable:    2000000 kB\n")
    assert doctor.memory_mb(str(meminfo)) == (3884252 * 1024 / 1e6, 2000000 * 1024 / 1e6)
    assert doctor.memory_mb(str(tmp_path / "none")) is None
