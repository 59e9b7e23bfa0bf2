"""`segedge export --debug-quant` / `--int8-fallback`: the quant report from the export command itself."""

import json

from typer.testing import CliRunner

from segedge.cli import app


def test_export_debug_quant_adds_int8_and_writes_the_report(micro_run, tmp_path):
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["export", str(micro_run), "--out", str(out), "--format", "fp32",
                                      "--debug-quant", "--calib-images", "4", "--eval-images", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"fp32", "int8"} <= set(manifest["artifacts"])  # --debug-quant implies int8
    report = json.loads((out / "quant_report.json").read_text())
    assert report["schema_version"] == 1 and report["tflite"]["layers"]
    assert all("rmse" in row for row in report["tflite"]["layers"])


def test_export_rejects_a_bad_fallback_value_before_converting(micro_run, tmp_path):
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["export", str(micro_run), "--out", str(out), "--int8-fallback", "many"])
    assert result.exit_code == 2, result.output
    assert "many" in result.output and not out.exists()
