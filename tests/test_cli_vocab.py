"""One vocabulary across commands: ``--format`` names artifacts everywhere, image counts say ``-images``.

The old spellings (``--formats``, ``--artifacts``, ``--artifact``, ``--calib``, ``--eval``, and
``--max-miou-drop`` for the fallback bound) still work for one release but are hidden from ``--help``.
Each command is stopped at the stage call it hands the parsed options to, so no model is needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segedge.cli import app
from segedge.contract.targets import parse_one_name, parse_targets, split_names
from segedge.util.errors import ConfigError

# command -> (new names that --help must list, old names it must not)
HELP = {
    "export": (("--format", "--calib-images", "--eval-images", "--fallback-max-drop", "--int8"),
               ("--formats", "--calib", "--eval", "--max-miou-drop")),
    "bench": (("--format", "--threads", "--max-miou-drop"), ("--artifacts", "--artifact", "--formats")),
    "predict": (("--format", "--threads"), ("--artifact", "--artifacts", "--formats")),
    "quant-report": (("--fallback-max-drop",), ("--max-miou-drop",)),
}


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def option_names(help_text: str) -> set[str]:
    """Every ``--name`` written in the help text (a whole option name, not a prefix of a longer one)."""
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*(?![\w-])", help_text))


@pytest.mark.parametrize("command", sorted(HELP))
def test_help_lists_the_new_names_only(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    names = option_names(result.output)
    new, old = HELP[command]
    assert set(new) <= names, set(new) - names
    assert not set(old) & names, set(old) & names


class Captured(Exception):
    """Raised by a stand-in stage function to stop the command once it holds the parsed options."""


@pytest.fixture
def captured(monkeypatch) -> dict:
    """Replace the stage calls of export, bench and predict by recorders that stop the command."""
    import segedge.bench.run
    import segedge.edge.predictor
    import segedge.export.bundle

    seen: dict = {}

    def recorder(key):
        def record(*args, **kwargs):
            seen[key] = (args, kwargs)
            raise ConfigError("captured")
        return record

    monkeypatch.setattr(segedge.export.bundle, "export_bundle", recorder("export"))
    monkeypatch.setattr(segedge.bench.run, "run_bench", recorder("bench"))
    monkeypatch.setattr(segedge.edge.predictor, "load", recorder("predict"))
    return seen


def export_call(captured: dict, tmp_path: Path, *args: str) -> dict:
    captured.clear()
    result = invoke("export", tmp_path / "run", "--out", tmp_path / "bundle", *args)
    assert "error: captured" in result.output, result.output
    positional, kwargs = captured["export"]
    return {"targets": [t.name for t in positional[2]], "calib": kwargs["calib"], "eval": kwargs["eval_count"]}


def test_export_old_spellings_mean_the_same_as_the_new(captured, tmp_path):
    new = export_call(captured, tmp_path, "--format", "fp16", "--format", "onnx", "--calib-images", "7",
                      "--eval-images", "3")
    assert new == {"targets": ["fp16", "onnx"], "calib": 7, "eval": 3}
    assert export_call(captured, tmp_path, "--format", "onnx,fp16", "--calib-images", "7", "--eval-images", "3") == new
    assert export_call(captured, tmp_path, "--formats", "fp16,onnx", "--calib", "7", "--eval", "3") == new
    assert export_call(captured, tmp_path) == {"targets": ["fp32", "int8"], "calib": 200, "eval": 100}
    assert export_call(captured, tmp_path, "--int8")["targets"] == ["fp32", "int8", "onnx", "onnx-int8"]


def test_an_old_spelling_prints_its_new_name(captured, tmp_path):
    result = invoke("export", tmp_path / "run", "--out", tmp_path / "bundle", "--calib", "5")
    assert "--calib is now --calib-images" in result.output


@pytest.mark.parametrize("command", ["export", "quant-report"])
def test_fallback_bound_and_its_old_name_may_not_disagree(command, tmp_path):
    extra = ["--bundle", str(tmp_path / "b")] if command == "quant-report" else ["--out", str(tmp_path / "b")]
    result = invoke(command, tmp_path / "run", *extra, "--fallback-max-drop", "0.5", "--max-miou-drop", "2")
    assert result.exit_code == 2, result.output
    assert "--fallback-max-drop 0.5 and --max-miou-drop 2.0 disagree" in result.output


def bench_call(captured: dict, tmp_path: Path, *args: str):
    captured.clear()
    result = invoke("bench", tmp_path / "bundle", "--out", tmp_path / "report", *args)
    assert "error: captured" in result.output, result.output
    config = captured["bench"][0][0]
    return config.artifacts, config.threads


def test_bench_format_and_threads_take_repeats_and_comma_lists(captured, tmp_path):
    expected = (["int8", "onnx"], [1, 4])
    assert bench_call(captured, tmp_path, "--format", "int8", "--format", "onnx", "--threads", "1",
                      "--threads", "4") == expected
    assert bench_call(captured, tmp_path, "--format", "int8,onnx", "--threads", "1,4") == expected
    assert bench_call(captured, tmp_path, "--artifacts", "int8,onnx", "--threads", "1,4,1") == expected


def test_predict_format_takes_exactly_one_name(captured, tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    for option in ("--format", "--artifact"):
        captured.clear()
        result = invoke("predict", tmp_path / "bundle", image, "--out", tmp_path / "out", option, "onnx-int8",
                        "--threads", "2")
        assert "error: captured" in result.output, result.output
        assert captured["predict"][1]["artifact"] == "onnx-int8" and captured["predict"][1]["threads"] == 2
    captured.clear()
    result = invoke("predict", tmp_path / "bundle", image, "--out", tmp_path / "out", "--format", "fp32,int8")
    assert result.exit_code == 2 and "--format: give one artifact, got fp32, int8" in result.output
    assert "predict" not in captured


def test_one_list_syntax():
    assert split_names(["fp32, int8", "onnx", "", "fp32"]) == ["fp32", "int8", "onnx"]
    assert split_names("a,,b") == ["a", "b"] and split_names(None) == []
    assert [t.name for t in parse_targets(["onnx-int8", "fp32"])] == ["fp32", "onnx-int8"]  # table order
    assert parse_one_name(["int8"]) == "int8" and parse_one_name(None) is None
    with pytest.raises(ConfigError, match="--format: unknown format 'tflite9'; choose from fp32, fp16"):
        parse_targets("fp32,tflite9")
    with pytest.raises(ConfigError, match="no format given"):
        parse_targets(" , ")


@pytest.mark.parametrize(("runtime", "order"), [
    ("onnx", ["onnx-int8", "onnx"]),
    ("tflite", ["int8", "fp32", "fp16"]),
    (None, ["int8", "fp32", "onnx-int8", "onnx"]),  # no runtime named: TFLite first
])
def test_default_artifact_is_the_runtimes_int8_then_its_fp32(tiny_bundle, tmp_path, runtime, order):
    """The documented rule, checked by taking each expected choice away in turn (files only, nothing runs)."""
    import shutil

    from segedge.contract.manifest import load_manifest
    from segedge.edge.artifacts import choose_artifact

    shutil.copy2(tiny_bundle / "manifest.json", tmp_path / "manifest.json")
    manifest = load_manifest(tmp_path)
    for info in manifest.artifacts.values():
        (tmp_path / info.file).write_bytes(b"")  # present on disk is all the choice looks at
    for expected in order:
        name, _ = choose_artifact(tmp_path, manifest, runtime=runtime)
        assert name == expected
        (tmp_path / manifest.artifacts[name].file).unlink()
