"""Per-layer int8 report and float-fallback mechanics on the shared ``tiny_run`` / ``tiny_bundle``.

One module fixture builds the QuantizationDebugger once (SavedModel export +
calibration, the slow part) on a private copy of the bundle; every test reuses
it. Scoring and dtype checks use LiteRT only. Whether the search closes a gap
is tested on a model built for it (``test_quant_fallback``): the tiny model's
int8 drop depends on the CPU's integer kernels, so nothing here asserts one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from segedge.contract.manifest import load_manifest
from segedge.quant.apply import apply_results
from segedge.quant.context import load_context
from segedge.quant.fallback import onnx_builder, onnx_fallback, tflite_fallback
from segedge.quant.report import REPORT_JSON, build_report
from segedge.quant.report_files import REPORT_PNG, write_report
from segedge.quant.requant_onnx import onnx_fallback_nodes, onnx_float_nodes
from segedge.quant.requant_tflite import float_layer_dtypes
from segedge.quant.scoring import score_model
from segedge.quant.tflite_layers import layer_name
from segedge.util import fileio

SAMPLES = 4


@pytest.fixture(scope="module")
def debugged(tiny_run: Path, tiny_bundle: Path, tmp_path_factory):
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("quant") / "bundle"))
    scratch = tmp_path_factory.mktemp("quant_scratch")
    ctx = load_context(tiny_run, bundle)
    report, debug = build_report(ctx, scratch, SAMPLES, onnx=True)
    write_report(report, bundle)
    return ctx, report, debug, scratch


def _quantized_compute_outputs(path: Path) -> set[str]:
    """Names of int8 tensors written by a compute op (not QUANTIZE/DEQUANTIZE) in a TFLite model."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    names = set()
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        for out in op["outputs"]:
            if np.dtype(tensors[out]["dtype"]) == np.int8:
                names.add(tensors[out]["name"])
    return names


def test_report_lists_every_quantized_layer_with_its_error(debugged):
    ctx, report, _, _ = debugged
    data = json.loads((ctx.bundle / REPORT_JSON).read_text())
    assert data["schema_version"] == 1 and data["ranking"] == "rmse_over_scale"
    assert data["samples"]["count"] == SAMPLES
    layers = data["tflite"]["layers"]
    for row in layers:
        assert {"name", "op", "rmse", "scale", "rmse_over_scale", "correlation"} <= set(row)
        assert row["rmse"] >= 0 and row["scale"] > 0 and row["num_elements"] > 0
        assert row["rmse_over_scale"] == pytest.approx(row["rmse"] / row["scale"])
        assert row["correlation"] is None or -1 <= row["correlation"] <= 1
    ratios = [r["rmse_over_scale"] for r in layers]
    assert ratios == sorted(ratios, reverse=True)
    # every int8 compute-op output of the bundle's own int8 model has a row
    bundle_int8 = _quantized_compute_outputs(ctx.bundle / ctx.manifest.artifacts["int8"].file)
    names = {r["name"] for r in layers}
    assert len(layers) == len(names) >= 30
    # an int8 output made by a QUANTIZE carries one more suffix digit than its float name
    missing = {n for n in bundle_int8 - names if layer_name(n) not in names}
    assert not missing
    assert len(bundle_int8 & names) >= len(layers) - 1
    assert (ctx.bundle / REPORT_PNG).read_bytes()[:4] == b"\x89PNG"
    onnx_rows = data["onnx"]["layers"]
    assert onnx_rows and all(r["rmse"] >= 0 for r in onnx_rows)
    assert sum(1 for r in onnx_rows if r["scale"]) >= len(onnx_rows) // 2


def test_fallback_layers_are_float_in_the_produced_model(debugged):
    ctx, report, debug, scratch = debugged
    result = tflite_fallback(ctx, report, debug.debugger, scratch, 3, 100.0, allow_large=True)
    trial = next(t for t in result.tried if t.k == 3)
    assert result.applied_k == 3 and result.float_layers == trial.float_layers
    assert sorted(trial.float_layers + trial.not_float) == sorted(report.worst(3))
    assert trial.float_layers, "no denylisted layer ended up float"
    dtypes = float_layer_dtypes(result.model, result.float_layers)
    assert dtypes == {name: "float32" for name in result.float_layers}
    # a layer reported as not float really is not float32 in the model
    assert all(d != "float32" for d in float_layer_dtypes(result.model, trial.not_float).values())
    # the layers not denylisted are still int8, and the io stays as export writes it (uint8 in, int8 logits)
    kept = float_layer_dtypes(result.model, report.worst(8)[3:])
    assert set(kept.values()) == {"int8"}
    assert result.io_dtype == {"input": "uint8", "output": "int8"}


def test_onnx_fallback_excluded_nodes_turn_float(debugged):
    """nodes_to_exclude: the K worst ONNX nodes go from QDQ-wrapped (integer kernel) to float."""
    ctx, report, _, scratch = debugged
    nodes = onnx_fallback_nodes(report.onnx)
    assert len(nodes) == len(set(nodes)) >= 10
    result = onnx_fallback(ctx, report, scratch, 3, 100.0, allow_large=True)
    trial = next(t for t in result.tried if t.k == 3)
    assert result.artifact == "onnx-int8" and result.applied_k == 3
    assert sorted(trial.float_layers + trial.not_float) == sorted(nodes[:3])
    assert trial.float_layers, "no excluded node ended up float"
    plain = scratch / "fallback_onnx-int8_k0.onnx"
    fell_back = scratch / "fallback_onnx-int8_k3.onnx"
    assert fell_back.read_bytes() == result.model
    before, after = onnx_float_nodes(plain, nodes[:8]), onnx_float_nodes(fell_back, nodes[:8])
    assert all(after[n] for n in trial.float_layers)
    assert all(not after[n] for n in trial.not_float)
    assert any(not before[n] for n in trial.float_layers)  # at least one really changed from int8
    assert [after[n] for n in nodes[3:8]] == [before[n] for n in nodes[3:8]]  # the rest as before
    # K=0 is the bundle's own model, measured as it is; re-quantizing with nothing excluded rebuilds that
    # model (same calibration ids, method and reduce_range), so every K is comparable with K=0
    exported = ctx.manifest.artifacts["onnx-int8"].verify["miou"]  # (before any test replaces the artifact)
    assert next(t for t in result.tried if t.k == 0).miou == pytest.approx(exported, abs=1e-9)
    rebuilt = scratch / "rebuilt_k0.onnx"
    onnx_builder(ctx, scratch).build([], rebuilt)
    assert score_model(rebuilt, ctx).miou == pytest.approx(exported, abs=1e-9)
    assert result.io_dtype == {"input": "float32", "output": "float32"}


def test_onnx_auto_fallback_stops_at_the_smallest_k_meeting_a_constructed_bound(debugged):
    """ORT int8 loses nothing on the tiny model (drops within about +-0.1 point for every K), so the
    bound is constructed from a sweep: the lowest drop any K > 0 reached, which K = 0 misses."""
    ctx, report, _, scratch = debugged
    sweep = {t.k: t.drop for t in onnx_fallback(ctx, report, scratch, "auto", -100.0, allow_large=True).tried}
    bound = min(drop for k, drop in sweep.items() if k > 0)
    if bound >= sweep[0]:
        pytest.skip(f"no K > 0 scored better than K = 0 ({sweep}): no bound to construct")
    result = onnx_fallback(ctx, report, scratch, "auto", bound, allow_large=True)
    tried = {t.k: t for t in result.tried}
    assert result.met and result.chosen_k > 0 and tried[result.chosen_k].drop <= bound + 1e-9
    assert all(not t.meets for k, t in tried.items() if k < result.chosen_k)
    assert not tried[result.chosen_k - 1].meets  # bisection tried the K below and it missed
    assert set(result.float_layers) <= set(onnx_fallback_nodes(report.onnx)[: result.chosen_k])

    assert apply_results(ctx, [result]) == [result] and result.replaced
    new = load_manifest(ctx.bundle).artifacts["onnx-int8"]
    assert new.precision == ("mixed" if result.float_layers else "int8")
    assert new.details["fallback_k"] == result.chosen_k
    assert new.details["nodes_to_exclude"] == onnx_fallback_nodes(report.onnx)[: result.chosen_k]
    assert new.sha256 == fileio.sha256_file(ctx.bundle / new.file)
    assert 100 * (result.keras_miou - new.verify["miou"]) == pytest.approx(tried[result.chosen_k].drop, abs=1e-6)
    floats = onnx_float_nodes(ctx.bundle / new.file, new.details["float_layers"])
    assert floats and all(floats.values())
