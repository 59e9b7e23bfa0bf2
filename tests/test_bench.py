"""``segedge bench`` end to end on the shared ``tiny_bundle``: report files, schema, gate, failures.

Runs are kept tiny (--runs 3 --warmup 1 --threads 1); nothing here asserts a
timing, only that timings exist and are sane in kind.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segedge import fileio
from segedge.bench.report import SCHEMA_VERSION
from segedge.bench.run import ROW_KEYS
from segedge.cli import app
from segedge.manifest import load_manifest

FAST = ["--runs", "3", "--warmup", "1", "--threads", "1", "--e2e-images", "2", "--gallery", "2"]
# The tiny model is fit for a few steps only; its int8 conversions agree with Keras far less than a
# trained model's would, so the healthy case uses loose bounds. Damage must still break them.
LOOSE = ["--min-agreement", "0.9", "--max-miou-drop", "5"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(*args: str):
    return CliRunner().invoke(app, ["bench", *map(str, args)])


@pytest.fixture(scope="module")
def healthy(tiny_bundle: Path, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("bench") / "report"
    result = bench(tiny_bundle, "--out", out, "--no-keras", *FAST, *LOOSE)
    return out, result


def _copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "bundle"))


def test_healthy_bundle_passes_and_writes_every_report_file(healthy):
    out, result = healthy
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.json", "report.html", "latency_vs_miou.png"):
        assert (out / name).is_file(), name
    assert "parity gate: passed" in result.output
    assert not list(out.glob(".segedge-tmp-*"))


def test_report_json_schema(healthy, tiny_bundle):
    out, _ = healthy
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == SCHEMA_VERSION
    for key in ("settings", "machine", "rows", "accuracy", "gate", "files", "notes", "model"):
        assert key in report
    assert {"cpu_model", "cores", "python", "versions"} <= set(report["machine"])
    artifacts = list(load_manifest(tiny_bundle).artifacts)
    assert [r["artifact"] for r in report["rows"]] == artifacts  # one thread count: one row each
    for row in report["rows"]:
        assert set(ROW_KEYS) <= set(row)
        assert row["error"] is None, row["error"]
        assert row["threads"] == 1 and row["runs"] == 3 and len(row["samples_ms"]) == 3
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["init_ms"] > 0 and row["first_ms"] > 0 and row["e2e_total_ms"] > 0
        assert row["peak_rss_mb"] > row["size_mb"] > 0
        assert 0.0 <= row["agreement"] <= 1.0 and 0.0 <= row["miou"] <= 1.0
    fp32 = next(r for r in report["rows"] if r["artifact"] == "fp32")
    assert fp32["speedup_vs_fp32"] == 1.0 and fp32["agreement"] > 0.99
    assert report["gate"] == {**report["gate"], "passed": True, "failures": [], "artifacts": artifacts}
    assert report["gate"]["bounds"]["min_agreement"] == 0.9
    assert len(report["accuracy"]["fp32"]["per_class_iou"]) == 21
    assert report["accuracy"]["keras"]["source"] == "reference.npz"


def test_plot_and_gallery_are_valid_pngs(healthy):
    out, _ = healthy
    strips = sorted((out / "gallery").glob("*.png"))
    assert len(strips) == 2
    for path in (out / "latency_vs_miou.png", *strips):
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as image:
            image.verify()
    with Image.open(strips[0]) as strip:  # image | truth | keras | six artifacts, side by side
        assert strip.width > 8 * strip.height


def test_markdown_and_html_embed_the_pictures(healthy):
    out, _ = healthy
    markdown = (out / "report.md").read_text()
    assert "![latency vs mIoU](latency_vs_miou.png)" in markdown
    assert markdown.count("](gallery/") == 2 and "| int8 |" in markdown and "PASSED" in markdown
    html = (out / "report.html").read_text()
    uris = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(uris) == 3  # the plot and two strips, inlined
    assert all(base64.b64decode(u)[:8] == PNG_MAGIC for u in uris)
    assert "src='gallery" not in html and "http" not in html.replace("http-equiv", "")


def test_agreement_matches_an_independent_run_over_reference_npz(healthy, tiny_bundle):
    """Recompute fp32 and int8 masks in-process and compare with what bench reported."""
    from segedge.edge.runtime import open_backend
    from segedge.metrics import agreement
    from segedge.preprocess import scale_pixels

    out, _ = healthy
    report = json.loads((out / "report.json").read_text())
    manifest = load_manifest(tiny_bundle)
    with np.load(tiny_bundle / "reference.npz") as data:
        inputs, keras = data["inputs"], data["keras"]
    for name in ("fp32", "int8"):
        backend = open_backend(tiny_bundle / manifest.artifacts[name].file, threads=1)
        masks = backend.run(scale_pixels(inputs, manifest.preprocess)).argmax(-1)
        assert report["accuracy"][name]["agreement"] == pytest.approx(agreement(masks, keras))


def test_shuffled_keras_reference_fails_the_gate_after_writing_the_report(tiny_bundle, tmp_path):
    """Keras masks with their class ids shuffled (a pixel shuffle would keep a one-class mask intact)."""
    bundle = _copy(tiny_bundle, tmp_path)
    with np.load(bundle / "reference.npz") as data:
        arrays = {k: data[k] for k in data.files}
    relabel = np.arange(256, dtype=np.uint8)
    relabel[:21] = np.roll(np.arange(21), 1)  # every class id becomes another one
    arrays["keras"] = relabel[arrays["keras"]]
    np.savez(bundle / "reference.npz", **arrays)
    out = tmp_path / "report"
    result = bench(bundle, "--out", out, "--no-keras", "--artifacts", "fp32,int8", *FAST, *LOOSE)
    assert result.exit_code == 7, result.output
    failing = [line.strip() for line in result.output.splitlines() if re.match(r"\s+(fp32|int8): ", line)]
    assert len(failing) == 2 and all("agreement with Keras" in line and "90.00 %" in line for line in failing)
    report = json.loads((out / "report.json").read_text())
    assert report["gate"]["passed"] is False and len(report["gate"]["failures"]) == 2


def _scramble_int8_weights(path: Path) -> int:
    """Overwrite the model's large int8 constant tensors in place; the flatbuffer stays valid."""
    from segedge.edge.runtime import tflite_interpreter_class

    interpreter = tflite_interpreter_class()(model_path=str(path))
    interpreter.allocate_tensors()
    data, rng, scrambled = bytearray(path.read_bytes()), np.random.default_rng(1), 0
    for detail in interpreter.get_tensor_details():
        if detail["dtype"] != np.int8 or int(np.prod(detail["shape"])) < 4096:
            continue
        try:
            raw = interpreter.get_tensor(detail["index"]).tobytes()
        except ValueError:  # a tensor without data of its own (computed, or handed to a delegate)
            continue
        at = data.find(raw)
        if at >= 0:
            data[at : at + len(raw)] = rng.integers(-128, 128, len(raw), dtype=np.int8).tobytes()
            scrambled += 1
    path.write_bytes(bytes(data))
    return scrambled


def test_damaged_int8_weights_fail_the_gate(tiny_bundle, tmp_path):
    """A bad conversion, not a bad copy: the int8 model loads and runs (sha updated) but its weights are noise."""
    bundle = _copy(tiny_bundle, tmp_path)
    manifest = load_manifest(bundle)
    info = manifest.artifacts["int8"]
    assert _scramble_int8_weights(bundle / info.file) > 0
    info.sha256 = fileio.sha256_file(bundle / info.file)
    manifest.save(bundle / "manifest.json")
    out = tmp_path / "report"
    result = bench(bundle, "--out", out, "--no-keras", "--artifacts", "fp32,int8", *FAST, *LOOSE)
    assert result.exit_code == 7, result.output
    line = re.search(r"^\s+int8: (.*)$", result.output, re.M)
    assert line and "agreement with Keras" in line.group(1) and "not measured" not in line.group(1)
    assert not re.search(r"^\s+fp32: ", result.output, re.M)
    rows = {r["artifact"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert rows["int8"]["error"] is None and rows["int8"]["agreement"] < 0.9


def test_unreadable_artifact_is_an_error_row_not_a_crash(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path)
    manifest = load_manifest(bundle)
    (bundle / manifest.artifacts["onnx-int8"].file).write_bytes(b"truncated")
    out = tmp_path / "report"
    result = bench(bundle, "--out", out, "--no-keras", "--artifacts", "fp32,onnx-int8", *FAST, *LOOSE)
    assert result.exit_code == 7, result.output
    rows = {r["artifact"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert rows["fp32"]["error"] is None and rows["fp32"]["p50_ms"] > 0
    assert "sha256" in rows["onnx-int8"]["error"] and rows["onnx-int8"]["p50_ms"] is None
    assert "onnx-int8: not measured" in result.output


def test_data_option_scores_the_val_split(tiny_bundle, synth_root, tmp_path):
    out = tmp_path / "report"
    result = bench(tiny_bundle, "--out", out, "--no-keras", "--artifacts", "fp32", "--data", synth_root,
                   "--limit", "4", *FAST, *LOOSE, "--no-plot")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"]["fp32"]["eval_images"] == 4 and "val" in report["accuracy"]["fp32"]["eval_set"]
    assert report["rows"][0]["e2e_images"] == 2
    assert not (out / "latency_vs_miou.png").exists() and "--no-plot" in " ".join(report["notes"])


def test_keras_row_is_measured_like_the_artifacts(tiny_bundle, tmp_path):
    pytest.importorskip("tensorflow")
    out = tmp_path / "report"
    result = bench(tiny_bundle, "--out", out, "--keras", "--artifacts", "fp32", *FAST, *LOOSE, "--gallery", "0")
    assert result.exit_code == 0, result.output
    rows = {r["artifact"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    keras = rows["keras"]
    assert keras["error"] is None and keras["runtime"] == "keras" and keras["p50_ms"] > 0
    assert keras["agreement"] > 0.99  # the live model reproduces its own reference masks
    assert rows["fp32"]["speedup_vs_keras"] == pytest.approx(keras["p50_ms"] / rows["fp32"]["p50_ms"])


def test_bad_options_are_one_line_errors(tiny_bundle, tmp_path):
    for args, code in ((["--artifacts", "nope"], 2), (["--threads", "0"], 2), (["--min-agreement", "97"], 2),
                       (["--min-agreement", "bogus=0.9"], 2)):
        result = bench(tiny_bundle, "--out", tmp_path / "r", *args)
        assert result.exit_code == code, (args, result.output)
        assert "error:" in result.output
    assert bench(tmp_path / "missing", "--out", tmp_path / "r").exit_code == 4


def test_bench_modules_never_import_tensorflow():
    code = textwrap.dedent(
        """
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"tensorflow", "keras", "tf2onnx", "tf_keras"}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import segedge.commands.bench, segedge.bench.run, segedge.bench.child, segedge.bench.report
        import segedge.bench.gallery, segedge.bench.report_plot
        assert not any(m.split(".")[0] in {"tensorflow", "keras"} for m in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_report_without_matplotlib_notes_the_skipped_plot(tiny_bundle, tmp_path, monkeypatch):
    """The library path (run_bench + write_report) in the edge install, where matplotlib may be absent."""
    from segedge.bench import report as report_module
    from segedge.bench.run import BenchConfig, run_bench

    result = run_bench(BenchConfig(tiny_bundle, artifacts=["int8"], threads=[1], warmup=0, runs=1,
                                   e2e_images=1, keras=False))
    assert [r["artifact"] for r in result.rows] == ["int8"] and result.rows[0]["input_dtype"] == "uint8"
    monkeypatch.setattr(report_module, "matplotlib_available", lambda: False)
    files = report_module.write_report(result, tmp_path / "report", gallery_count=1)
    assert files.plot is None and not (tmp_path / "report" / "latency_vs_miou.png").exists()
    assert "matplotlib is not installed" in files.markdown.read_text()
    assert len(files.gallery) == 1 and files.html.read_text().count("data:image/png;base64,") == 1
