"""Export mechanics on ``micro_run`` (a model that converts in ~1 s): CLI, atomicity, errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segedge.cli import app
from segedge.contract.manifest import load_manifest
from segedge.contract.targets import parse_targets
from segedge.util import fileio
from segedge.util.errors import ExportError, ModelError

pytestmark = pytest.mark.slow
runner = CliRunner()


def listing(folder: Path) -> dict[str, str]:
    return {p.name: fileio.sha256_file(p) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def micro_bundle(micro_run, tmp_path_factory) -> Path:
    """A previous bundle that later exports must leave alone when they fail."""
    from segedge.export.bundle import export_bundle

    out = tmp_path_factory.mktemp("micro") / "bundle"
    export_bundle(micro_run, out, parse_targets("fp32"), eval_count=2)
    return out


def test_cli_int8_alone_yields_both_runtimes_int8_and_their_float_baselines(micro_run, tmp_path):
    out = tmp_path / "b"
    result = runner.invoke(app, ["export", str(micro_run), "--int8", "--calib-images", "4", "--eval-images", "2",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert set(manifest.artifacts) == {"fp32", "int8", "onnx", "onnx-int8"}
    assert manifest.calibration["count"] == 4 and manifest.reference["count"] == 2
    assert "int8" in result.stdout and "agreement" in result.stdout
    # every mIoU says what it was measured on, in the printed line and next to verify.miou in the manifest
    split = manifest.reference["split"]
    for name, info in manifest.artifacts.items():
        assert info.verify["miou_basis"] == {"images": 2, "split": split, "resolution": "model", "height": 64,
                                             "width": 64}
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"{name} "))
        assert f"mIoU {100 * info.verify['miou']:.2f} % (2 {split} images at 64x64 model size)" in line


def test_cli_refuses_existing_bundle_without_overwrite(micro_run, micro_bundle):
    result = runner.invoke(app, ["export", str(micro_run), "--out", str(micro_bundle), "--format", "fp32"])
    assert result.exit_code == 8 and "--overwrite" in result.output


@pytest.mark.parametrize("args", [["--calib-images", "0"], ["--eval-images", "0"], ["--format", "tflite9"],
                                  ["--int8-io", "int16"], ["--calib-method", "median"]])
def test_cli_rejects_bad_options_before_converting(micro_run, tmp_path, args):
    result = runner.invoke(app, ["export", str(micro_run), "--out", str(tmp_path / "b"), *args])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("failure", [RuntimeError("converter exploded"), KeyboardInterrupt()])
def test_failure_midway_leaves_previous_bundle_and_no_temp(micro_run, micro_bundle, tmp_path, monkeypatch, failure):
    import segedge.export.bundle as bundle

    before = listing(micro_bundle)
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    real = bundle.convert_tflite

    def fail_on_int8(source, precision, *args, **kwargs):
        if precision.value == "int8":
            raise failure
        return real(source, precision, *args, **kwargs)

    monkeypatch.setattr(bundle, "convert_tflite", fail_on_int8)
    expected = KeyboardInterrupt if isinstance(failure, KeyboardInterrupt) else ExportError
    with pytest.raises(expected) as info:
        bundle.export_bundle(micro_run, micro_bundle, parse_targets("fp32,int8"), calib=2, eval_count=2)
    if expected is ExportError:
        assert "export int8 failed" in str(info.value) and "converter exploded" in str(info.value)
    assert listing(micro_bundle) == before
    assert [p.name for p in micro_bundle.parent.iterdir()] == [micro_bundle.name]
    assert list(scratch_root.iterdir()) == []


KILLED_EXPORT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import segedge.export.bundle as bundle
    from segedge.contract.targets import parse_targets

    def hang(*args, **kwargs):
        Path(sys.argv[3]).write_text("converting")
        time.sleep(600)

    bundle.convert_tflite = hang
    bundle.export_bundle(sys.argv[1], sys.argv[2], parse_targets("fp32"), eval_count=2)
    """
)


def test_killed_export_leaves_previous_bundle_and_next_run_cleans_up(micro_run, micro_bundle, tmp_path):
    from segedge.export.bundle import export_bundle

    target = tmp_path / "bundle"
    shutil.copytree(micro_bundle, target)
    before = listing(target)
    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(micro_run), str(target), str(marker)],
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the export never reached conversion"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert listing(target) == before
    assert any(p.name.startswith(fileio.TMP_PREFIX) for p in tmp_path.iterdir())  # what a kill leaves
    export_bundle(micro_run, target, parse_targets("fp32"), eval_count=2)
    assert not any(p.name.startswith(fileio.TMP_PREFIX) for p in tmp_path.iterdir())
    assert set(load_manifest(target).artifacts) == {"fp32"}


def test_truncated_model_is_a_model_error_naming_the_file(micro_run, tmp_path):
    from segedge.export.bundle import export_bundle

    run = Path(shutil.copytree(micro_run, tmp_path / "run"))
    data = (run / "model.keras").read_bytes()
    (run / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="model.keras"):
        export_bundle(run, tmp_path / "b", parse_targets("fp32"), eval_count=2)
    assert not (tmp_path / "b").exists()


def test_model_and_config_size_mismatch_is_refused(micro_run, tmp_path):
    from segedge.export.bundle import export_bundle

    run = Path(shutil.copytree(micro_run, tmp_path / "run"))
    config = json.loads((run / "config.json").read_text())
    config["preprocess"]["height"] = config["preprocess"]["width"] = 96
    fileio.write_json(run / "config.json", config)
    with pytest.raises(ModelError, match="do not belong together"):
        export_bundle(run, tmp_path / "b", parse_targets("fp32"), eval_count=2)


def test_onnx_int8_alone_builds_its_own_fp32_and_selectable_options(micro_run, tmp_path):
    from segedge.export.bundle import export_bundle

    manifest = export_bundle(micro_run, tmp_path / "b", parse_targets("onnx-int8,int8"), calib=3, eval_count=2,
                             int8_io="int8", calib_method="entropy")
    assert set(manifest.artifacts) == {"int8", "onnx-int8"}
    assert manifest.artifacts["int8"].input.dtype == "int8" and manifest.artifacts["int8"].output.dtype == "int8"
    assert manifest.artifacts["onnx-int8"].details["calibration_method"] == "entropy"
    assert manifest.calibration["onnx_method"] == "entropy"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        ".segedge.json", "manifest.json", "model_int8.onnx", "model_int8.tflite", "reference.npz"]
