"""``segedge bench --profile`` and the throughput column: per-op tables that come from the runtimes themselves.

The expectations are independent of segedge's own code: the op list of a
.tflite file read with the flatbuffer schema LiteRT ships, a hand-written
onnxruntime trace, and the ONNX graph's own node list.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segedge.bench.profile import summarize_onnx, tflite_plan, timed_node_events
from segedge.bench.timing import throughput_fps, time_invoke
from segedge.cli import app
from segedge.contract.manifest import load_manifest

FAST = ["--runs", "3", "--warmup", "1", "--threads", "1", "--e2e-images", "1", "--gallery", "0", "--no-keras",
        "--max-miou-drop", "5", "--no-plot"]


def _file(bundle: Path, name: str) -> Path:
    return bundle / load_manifest(bundle).artifacts[name].file


def tflite_operator_names(path: Path) -> Counter:
    """Op names of the first subgraph, read from the flatbuffer (LiteRT's generated schema), not the interpreter."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    return Counter(names[codes[op.opcodeIndex]] for op in model.subgraphs[0].operators)


@pytest.mark.parametrize("name", ["fp32", "int8"])
def test_tflite_plan_lists_every_operator_of_the_file(tiny_bundle, name):
    path = _file(tiny_bundle, name)
    plan = tflite_plan(path)
    assert Counter({op.op: op.count for op in plan.ops}) == tflite_operator_names(path)
    assert all(0 <= op.outside <= op.count for op in plan.ops)
    assert all(op.ms is None for op in plan.ops)  # the plan alone has no times
    convs = [op for op in plan.ops if op.op == "CONV_2D"]
    assert convs and convs[0].outside == 0 and convs[0].engine == "XNNPACK"  # XNNPACK takes convolutions


def test_onnx_summary_sums_kernel_time_per_op_type_over_the_timed_runs():
    def node(name, op, ts, dur, provider="CPUExecutionProvider"):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
                "args": {"op_name": op, "provider": provider}}

    trace = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},  # the warm-up run: left out
        node("conv1", "Conv", 10, 5000),
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
        node("conv1", "Conv", 210, 300), node("conv2", "Conv", 230, 100), node("cat", "Concat", 250, 100),
        node("conv1", "Conv", 260, 0, provider="CPUExecutionProvider"),
        {"cat": "Node", "name": "conv1_fence_before", "ts": 220, "dur": 7, "args": {"op_name": "Conv"}},
        {"cat": "Session", "name": "model_run", "ts": 400, "dur": 100},
        node("conv1", "Conv", 410, 300), node("conv2", "Conv", 430, 100), node("cat", "Concat", 450, 100),
    ]
    profile = summarize_onnx(timed_node_events(trace, runs=2), runs=2)
    ops = {op.op: op for op in profile.ops}
    assert [op.op for op in profile.ops] == ["Conv", "Concat"]  # slowest first
    assert ops["Conv"].ms == pytest.approx(0.4) and ops["Concat"].ms == pytest.approx(0.1)  # (300+100) us per run
    assert ops["Conv"].share == pytest.approx(0.8) and ops["Conv"].count == 2 and ops["Conv"].engine == "CPU"


def test_throughput_counts_back_to_back_calls():
    calls = []
    wall: list[int] = []
    samples = time_invoke(calls.append, "x", warmup=2, runs=5, wall=wall)
    assert len(calls) == 7 and len(samples) == 5 and len(wall) == 1
    assert wall[0] >= sum(samples)  # the loop holds every timed call
    assert throughput_fps(5, 250_000_000) == pytest.approx(20.0)
    assert throughput_fps(0, 1) is None


@pytest.fixture(scope="module")
def profiled(tiny_bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "report"
    result = CliRunner().invoke(app, ["bench", str(tiny_bundle), "--out", str(out), "--format", "int8,onnx-int8",
                                      "--profile", *FAST])
    return out, result


def test_bench_profile_writes_per_op_tables(profiled, tiny_bundle):
    out, result = profiled
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    rows = {row["artifact"]: row for row in report["rows"]}
    assert report["settings"]["profile"] is True
    assert rows["int8"]["fps"] > 0 and rows["onnx-int8"]["fps"] > 0
    tflite = rows["int8"]["profile"]
    timed = [op for op in tflite["ops"] if op["ms"] is not None]  # each op timed alone, cut out of the model
    assert timed and tflite["sum_ms"] == pytest.approx(sum(op["ms"] for op in timed))
    assert sum(op["share"] for op in timed) == pytest.approx(1.0)
    assert sum(op["count"] for op in tflite["ops"]) == sum(tflite_operator_names(_file(tiny_bundle, "int8")).values())
    assert tflite["outside_xnnpack"] == [f"{op['op']} x{op['outside']}" for op in tflite["ops"] if op["outside"]]
    onnx = rows["onnx-int8"]["profile"]
    import onnx as onnx_lib

    graph_ops = {node.op_type for node in onnx_lib.load(_file(tiny_bundle, "onnx-int8")).graph.node}
    assert {op["op"] for op in onnx["ops"]} & graph_ops  # ops named as the graph names them (some fused)
    assert sum(op["share"] for op in onnx["ops"]) == pytest.approx(1.0)
    assert all(op["ms"] >= 0 for op in onnx["ops"]) and onnx["runs"] == 3
    markdown = (out / "report.md").read_text()
    assert "## Per-op profile (--profile)" in markdown and "### int8 (tflite, 1 thread, 3 runs)" in markdown
    assert "throughput fps (batch 1)" in markdown
    for flagged in tflite["outside_xnnpack"]:
        assert flagged in markdown and flagged in result.output
    assert "Per-op profile" in (out / "report.html").read_text()
