"""Every command benchmarks/README.md documents runs and prints its table, at the smallest settings.

The scripts are not tests and nothing here asserts a timing: these run each
documented invocation (1 run, 1 round, 32-64 px models) as a subprocess, the
way the README runs it, and check the exit status, the table's header row and
which rows it holds. ``bench_runtimes.py BUNDLE --model RUN/model.keras`` gets a
model saved the way ``segedge train`` saves one (its ``input`` is a list).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segedge.contract.manifest import load_manifest

REPO = Path(__file__).resolve().parents[1]
RUNTIMES_HEAD = ["artifact", "runtime", "batch", "threads", "p50 ms", "p90 ms", "min ms", "invoke p50", "x keras",
                 "agree", "MB"]
QUICK = ["--batches", "1", "--threads", "1", "--runs", "1", "--warmup", "0", "--rounds", "1"]
VARIANTS = ["original", "subpixel", "subpixel-narrow", "subpixel-interleave", "subpixel-nofold", "subpixel-dense",
            "transpose-fold"]
TARGET_FILES = {"fp32": "model_fp32.tflite", "int8": "model_int8.tflite", "onnx": "model_fp32.onnx",
                "onnx-nchw": "model_fp32_nchw.onnx", "onnx-int8": "model_int8.onnx",
                "onnx-int8-u8": "model_int8_u8.onnx", "onnx-int8-rr": "model_int8_rr.onnx",
                "onnx-int8-qop": "model_int8_qop.onnx", "onnx-int8-nchw": "model_int8_nchw.onnx"}

pytestmark = pytest.mark.slow


def run_script(name: str, *args: object, timeout: int = 600, temp: Path | None = None) -> str:
    """``python benchmarks/NAME ARGS`` from the repository root, as the README runs it; its stdout.

    ``temp``: the script's temp folder (TMPDIR), which must be empty again when it exits."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               TF_CPP_MIN_LOG_LEVEL="2")
    if temp is not None:
        temp.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(temp)
    result = subprocess.run([sys.executable, f"benchmarks/{name}", *map(str, args)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stderr[-3000:]}"
    if temp is not None:
        left = leftovers(temp)
        assert not left, f"{name} left {left} in its temp folder"
    return result.stdout


# Importing onnxruntime writes a 51-byte session file, .ses, into the temp folder (TMPDIR=/tmp/x python -c
# "import onnxruntime" leaves /tmp/x/.ses): onnxruntime's, not the script's; segedge neither writes nor removes it.
FOREIGN_TEMP_FILES = {".ses"}


def leftovers(temp: Path) -> list[str]:
    """What a script left in its temp folder, besides files other libraries put there."""
    return sorted(p.name for p in temp.iterdir() if p.name not in FOREIGN_TEMP_FILES)


def table_rows(stdout: str, head: list[str]) -> list[list[str]]:
    """The cells of the Markdown table whose header row is exactly ``head``."""
    lines = [line.strip() for line in stdout.splitlines()]
    header = [i for i, line in enumerate(lines) if line.startswith("|")
              and [c.strip() for c in line.strip("|").split("|")] == head]
    assert header, f"no table with columns {head} in:\n{stdout}"
    rows = []
    for line in lines[header[0] + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def trained_keras_model(tiny_run: Path, tmp_path_factory) -> Path:
    """tiny_run's model re-saved the way segedge.train.fit saves its inference view (``input`` is a list)."""
    import keras

    model = keras.models.load_model(tiny_run / "model.keras", compile=False)
    inference = keras.Model(model.inputs, model.outputs, name=model.name)  # as build_compiled does
    path = tmp_path_factory.mktemp("bench_smoke") / "model.keras"
    inference.save(path)
    assert isinstance(keras.models.load_model(path, compile=False).input, list)
    return path


def test_bench_runtimes_bundle_with_a_trained_keras_model(tiny_bundle, trained_keras_model, tmp_path):
    also = tiny_bundle / "model_int8.onnx"  # --also: an A/B of two exports in one run (here, the same file)
    out = run_script("bench_runtimes.py", tiny_bundle, "--model", trained_keras_model, *QUICK,
                     "--json", tmp_path / "rows.json", "--also", also)
    rows = table_rows(out, RUNTIMES_HEAD)
    files = sorted(info.file for info in load_manifest(tiny_bundle).artifacts.values())
    assert sorted(r[0] for r in rows if r[0] != "keras") == sorted([*files, f"also:{tiny_bundle.name}/{also.name}"])
    assert sorted(r[1] for r in rows if r[0] == "keras") == ["keras-call", "keras-predict"]
    data = json.loads((tmp_path / "rows.json").read_text())
    assert len(data["rows"]) == len(rows)
    by_file = {row["artifact"]: row for row in data["rows"]}
    # The exported float artifacts were verified against this very model: argmax agreement is near total.
    assert by_file["model_fp32.tflite"]["agree"] >= 0.99 and by_file["model_fp32.onnx"]["agree"] >= 0.99


def test_bench_runtimes_isolate_pools_each_rows_processes(tiny_bundle, tmp_path):
    """--isolate: one process per row and round; the rounds' samples are pooled into one row each."""
    args = ["--batches", "1", "--threads", "1", "--runs", "2", "--warmup", "0", "--rounds", "2"]
    out = run_script("bench_runtimes.py", tiny_bundle, "--keras", "", "--only", "int8", *args, "--isolate",
                     "--json", tmp_path / "rows.json")
    rows = table_rows(out, RUNTIMES_HEAD)
    assert sorted(r[0] for r in rows) == ["model_int8.onnx", "model_int8.tflite"]
    assert "one process per row and round" in out
    data = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [(r["runs"], r["isolated"], r["agree"]) for r in data] == [(2, True, None)] * 2
    assert all(r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] and "samples_ms" not in r for r in data)


def test_bench_runtimes_synthetic_builds_every_variant(tmp_path):
    out = run_script("bench_runtimes.py", "--synthetic", "--size", "32", "--variants", ",".join(VARIANTS),
                     "--targets", "fp32", *QUICK, "--workdir", tmp_path / "work")
    rows = table_rows(out, RUNTIMES_HEAD)
    assert sorted(r[0] for r in rows if r[0] != "keras") == sorted(f"{v}/model_fp32.tflite" for v in VARIANTS)


def test_bench_runtimes_synthetic_builds_every_target(tmp_path):
    """The sub-pixel experiment's targets and options (--keras-variants, --workdir, --json, --max-load)."""
    out = run_script("bench_runtimes.py", "--synthetic", "--size", "32", "--variants", "original",
                     "--targets", ",".join(TARGET_FILES), "--calibration", "2", "--keras-variants", *QUICK,
                     "--workdir", tmp_path / "work", "--json", tmp_path / "rows.json",
                     "--max-load", "1000", "--max-wait", "1")
    rows = table_rows(out, RUNTIMES_HEAD)
    assert sorted(r[0] for r in rows if not r[0].startswith("keras")) == sorted(
        f"original/{file}" for file in TARGET_FILES.values())
    assert sorted(r[0] for r in rows if r[0].startswith("keras")) == ["keras", "keras", "keras:original",
                                                                      "keras:original"]
    assert {row["artifact"] for row in json.loads((tmp_path / "rows.json").read_text())["rows"]} == {r[0] for r in rows}
    assert sorted(p.name for p in (tmp_path / "work").rglob("*.*") if p.suffix in (".tflite", ".onnx")) == sorted(
        TARGET_FILES.values())


@pytest.mark.parametrize("artifact", ["model_int8.tflite", "model_int8.onnx"])
def test_bench_ops_prints_both_tables(tiny_bundle, artifact):
    out = run_script("bench_ops.py", tiny_bundle / artifact, "--threads", "2", "--runs", "1", "--warmup", "0",
                     "--top", "3")
    extra = ["xnnpack"] if artifact.endswith(".tflite") else []
    by_type = table_rows(out, ["op type", "count", "ms/run", "share", *extra])
    by_node = table_rows(out, ["node", "op", "output shape", "ms/run", "share", *extra])
    assert len(by_type) == 3 and len(by_node) == 3
    conv = "CONV_2D" if artifact.endswith(".tflite") else "QLinearConv"  # a full-int8 U-Net is mostly convolutions
    assert conv in {row[0] for row in by_type}


def test_bench_overhead_prints_its_table(tiny_bundle):
    out = run_script("bench_overhead.py", tiny_bundle, "--runs", "2", "--warmup", "0")
    lines = out.splitlines()
    assert lines[0].startswith("model_fp32.tflite (tflite, 1 thread(s), 64x64, 2 runs per method")
    assert lines[1].split() == ["measure", "ms", "vs", "bare"]
    assert [line.split(",")[0] for line in lines[2:4]] == ["bare runtime call", "bench harness"]
    assert lines[-1].startswith("harness within 5 % of bare: ")


def test_bench_input_pipeline_prints_its_table(synth_root, tmp_path):
    out = run_script("bench_input_pipeline.py", synth_root, "--image-size", "32", "--batch-size", "2", "--steps", "1",
                     "--json", tmp_path / "rows.json")
    lines = out.strip().splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:1] == ["stage"])
    assert lines[head].split() == ["stage", "images/s", "ms/batch", "x", "train", "step"]
    stages = [line[:20].strip() for line in lines[head + 1 : head + 5]]
    assert stages == ["read + check", "input (cached)", "input (from disk)", "train step"]
    assert lines[-1].startswith("verdict: ")
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [row["stage"] for row in rows] == stages


def test_bench_photo_prints_the_target_and_stage_tables(tiny_bundle, tmp_path):
    out = run_script("bench_photo.py", tiny_bundle, "--photos", "1", "--rounds", "1", "--warmup", "0",
                     "--stream", "2", "--json", tmp_path / "photo.json", temp=tmp_path / "temp")
    rows = table_rows(out, ["artifact", "invoke p50 ms", "end-to-end p50 ms", "x best invoke", "bound", "within"])
    int8 = sorted(name for name, info in load_manifest(tiny_bundle).artifacts.items() if info.precision == "int8")
    assert sorted(r[0].split(" ")[0] for r in rows) == int8 and all(r[4] == "1.25" for r in rows)
    assert sum("(best int8)" in r[0] for r in rows) == 1
    best = next(r[0].split(" ")[0] for r in rows if "(best int8)" in r[0])
    stages = table_rows(out, [f"stage ({best})", "p50 ms", "% of sum"])
    assert [r[0] for r in stages] == ["decode", "resize + tensor", "invoke", "full-size mask", "colour"]
    assert json.loads((tmp_path / "photo.json").read_text())["bound"] == 1.25
    streams = table_rows(out, ["artifact", "row", "ms per photo", "cpu ms per photo", "x best invoke", "bound",
                               "within"])
    assert [r[1] for r in streams] == ["bare invoke p50", "latency: one photo alone", "stream one after another, "
                                       "per photo", "stream pipelined, per photo"] * len(int8)
    assert all(float(r[2]) > 0 for r in streams) and {r[5] for r in streams} == {"", "1.25"}
    assert [bool(r[3]) for r in streams] == [False, False, True, True] * len(int8)


def test_bench_upsample_compares_every_way_with_pil(tiny_bundle, tmp_path):
    out = run_script("bench_upsample.py", tiny_bundle, "--photos", "1", "--rounds", "1", temp=tmp_path / "temp")
    rows = table_rows(out, ["row", "p50 ms", "% of invoke p50", "bound %", "within", "equal px % vs pil"])
    assert [r[0] for r in rows[1:]] == ["pil", "numpy", "cv2", "block", "default", "mask"]
    assert rows[1][5] == "100.0000"  # pil against itself


def test_bench_camera_prints_fps_against_the_bound(tiny_bundle, tmp_path):
    pytest.importorskip("cv2")
    out = run_script("bench_camera.py", tiny_bundle, "--frames", "6", "--rounds", "1", "--every", "3",
                     "--threads", "2", "--json", tmp_path / "camera.json", temp=tmp_path / "temp")
    rows = table_rows(out, ["loop", "fps", "bound (0.9 x 1000/p50)", "within", "x model-alone fps",
                            "dropped (median)"])
    assert [r[0] for r in rows] == ["pipelined", "pipelined, 1 copy", "pipelined, live", "sequential"]
    assert rows[0][5] == rows[1][5] == rows[3][5] == "0"  # a video file waits: nothing dropped
    assert "pipelined: " in out and "2 copies x 1 thread" in out  # a video file: one copy per thread
    data = json.loads((tmp_path / "camera.json").read_text())
    assert set(data["fps"]) == {"pipelined", "pipelined, 1 copy", "pipelined, live", "sequential"}


FRONTIER_HEAD = ["model", "encoder", "width", "input", "mIoU %", "int8 p50 ms, 1 thr", "int8 p50 ms, 2 thr", "size MB",
                 "peak RSS MB", "frontier (2 thr)"]


def test_bench_frontier_trains_the_grid_and_prints_the_frontier(tmp_path):
    stdout = run_script("bench_frontier.py", "--widths", "0.35,1.0", "--encoders", "mobilenet_v2,mobilenet_v3_small",
                        "--sizes", "32", "--images", "24",
                        "--epochs", "1", "--steps", "2", "--batch-size", "8", "--runs", "2", "--eval-images", "6",
                        "--budget-ms", "1000", "--workdir", tmp_path / "grid", timeout=900)
    rows = table_rows(stdout, FRONTIER_HEAD)
    assert [row[:3] for row in rows] == [["w0.35-32px", "v2", "0.35"], ["w1-32px", "v2", "1.0"],
                                         ["v3-small-w1-32px", "v3-small", "1.0"]]
    assert any(row[-1] == "yes" for row in rows)  # the fastest point is on the frontier by construction
    assert "budget 1000 ms:" in stdout
