"""One int8 scale per concatenation in ONNX int8 models (segedge.export.onnx_scales, export.onnx.quantize_onnx)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from segedge.contract.preprocess import PreprocessSpec  # noqa: E402
from segedge.export.calibration import CalibrationSource  # noqa: E402
from segedge.export.onnx import quantize_onnx  # noqa: E402
from segedge.export.onnx_scales import concat_groups, shared_range_overrides  # noqa: E402

SIZE = 8


def _conv(name: str, source: str, weight: np.ndarray, inits: list, activation: str | None = None) -> list:
    """1x1 Conv (+ Relu, or Clip to [0, 6]) with no bias; the node list, its output named ``name``."""
    inits.append(numpy_helper.from_array(weight.astype(np.float32)[:, :, None, None], f"{name}_w"))
    if activation is None:
        return [helper.make_node("Conv", [source, f"{name}_w"], [name], name=f"{name}_conv")]
    nodes = [helper.make_node("Conv", [source, f"{name}_w"], [f"{name}_pre"], name=f"{name}_conv")]
    if activation == "relu":
        return nodes + [helper.make_node("Relu", [f"{name}_pre"], [name], name=f"{name}_relu")]
    inits += [numpy_helper.from_array(np.array(0, np.float32), f"{name}_lo"),
              numpy_helper.from_array(np.array(6, np.float32), f"{name}_hi")]
    return nodes + [helper.make_node("Clip", [f"{name}_pre", f"{name}_lo", f"{name}_hi"], [name], name=f"{name}_clip")]


def _model(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """NHWC pixels -> a, b (Relu) -> Concat -> Reshape -> Concat with skip (Clip 0..6, also read by conv d).

    Output: the outer concat after a 1x1 conv, and d, so that ``skip`` has a reader besides the concat.
    """
    inits: list = []
    nodes = [helper.make_node("Transpose", ["pixels"], ["x"], perm=[0, 3, 1, 2], name="to_nchw")]
    nodes += _conv("a", "x", weights["a"], inits, "relu")
    nodes += _conv("b", "x", weights["b"], inits, "relu")
    nodes += _conv("skip", "x", weights["skip"], inits, "clip")
    nodes.append(helper.make_node("Concat", ["a", "b"], ["ab"], axis=1, name="inner"))
    inits.append(numpy_helper.from_array(np.array([1, 8, SIZE, SIZE], np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", ["ab", "shape"], ["ab_r"], name="reshape"))
    nodes.append(helper.make_node("Concat", ["ab_r", "skip"], ["cat"], axis=1, name="outer"))
    nodes += _conv("out", "cat", weights["out"], inits)
    nodes += _conv("d", "skip", weights["d"], inits)
    graph = helper.make_graph(
        nodes, "concat_scales", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, SIZE, SIZE]),
         helper.make_tensor_value_info("d", TensorProto.FLOAT, [1, 2, SIZE, SIZE])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    # b's outputs reach about 4x a's: without sharing the two inputs get very different scales
    return {"a": rng.uniform(-0.004, 0.01, (4, 3)), "b": rng.uniform(-0.015, 0.04, (4, 3)),
            "skip": rng.uniform(-0.01, 0.02, (4, 3)), "out": rng.normal(0, 0.3, (2, 12)),
            "d": rng.normal(0, 0.3, (2, 4))}


@pytest.fixture(scope="module")
def calibration() -> CalibrationSource:
    pixels = np.random.default_rng(8).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
    return CalibrationSource([f"c{i}" for i in range(6)], pixels, PreprocessSpec(SIZE, SIZE, input="pixels"))


def test_groups_join_concats_through_reshape_and_leave_shared_tensors_out(weights):
    graph = _model(weights).graph
    groups = concat_groups(graph)
    assert [set(g) for g in groups] == [{"a", "b", "ab", "ab_r", "cat"}]  # skip: conv d reads it too
    # a float-fallback node is not quantized: its concat joins nothing
    assert concat_groups(graph, skip=["inner"]) == [["ab_r", "cat"]]


def test_overrides_take_the_union_and_never_widen_a_clamp(weights):
    graph = _model(weights).graph
    ranges = {"a": (0.0, 1.0), "b": (0.0, 4.0), "ab": (0.0, 4.0), "ab_r": (0.0, 4.0), "cat": (0.0, 5.0),
              "skip": (0.0, 6.0)}
    overrides = shared_range_overrides(graph, ranges)
    assert set(overrides) == {"a", "b", "ab", "cat"}  # ab_r: the quantizer copies ab's parameters
    assert {(float(o[0]["rmin"]), float(o[0]["rmax"])) for o in overrides.values()} == {(0.0, 5.0)}
    # a Relu output cannot go below 0: a group reaching -1 leaves a and b (Relu) out, not the rest
    overrides = shared_range_overrides(graph, {**ranges, "cat": (-1.0, 5.0)})
    assert set(overrides) == {"ab", "cat"}


def _qparams(graph, tensor: str, consumer_op: str) -> tuple[float, int]:
    """(scale, zero point) of the QuantizeLinear / DequantizeLinear next to ``tensor``."""
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == consumer_op and tensor in (node.input[0], node.output[0]):
            return float(constants[node.input[1]]), int(constants[node.input[2]])
    raise AssertionError(f"no {consumer_op} at {tensor}")


def _quantize(tmp_path, weights, calibration, share: bool) -> onnx.ModelProto:
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(_model(weights), fp32)
    scratch = tmp_path / ("shared" if share else "own")
    scratch.mkdir()
    converted = quantize_onnx(fp32, scratch, calibration, "pixels", share_concat_scales=share)
    return onnx.load_from_string(converted.data)


def _concat_inputs(graph, name: str) -> list[str]:
    node = next(n for n in graph.node if n.op_type == "Concat" and n.name.startswith(name))
    return list(node.input), node.output[0]


def test_quantized_concat_inputs_share_the_outputs_scale(tmp_path, weights, calibration):
    model = _quantize(tmp_path, weights, calibration, share=True)
    graph = model.graph
    inputs, output = _concat_inputs(graph, "inner")
    out_q = _qparams(graph, output, "QuantizeLinear")
    assert all(_qparams(graph, i, "DequantizeLinear") == out_q for i in inputs)
    # the outer concat: its decoder-side input shares too; skip (Clip 0..6, read by d) keeps its own
    (joined, skip), outer = _concat_inputs(graph, "outer")
    assert _qparams(graph, joined, "DequantizeLinear") == _qparams(graph, outer, "QuantizeLinear") == out_q
    # Independent expectation: uint8 over [0, max] of what the concat holds, from a numpy forward pass
    x = np.concatenate([b.transpose(0, 3, 1, 2) for b in calibration.batches()])
    a, b = (np.maximum(np.einsum("oc,nchw->nohw", weights[k], x), 0) for k in ("a", "b"))
    skip = np.clip(np.einsum("oc,nchw->nohw", weights["skip"], x), 0, 6)
    top = max(a.max(), b.max(), skip.max())
    scale, zero = out_q
    assert zero == 0 and scale * 255 == pytest.approx(top, rel=1e-4)
    assert _qparams(graph, "skip", "QuantizeLinear")[0] < scale  # skip's own range: [0, 6] or less


def test_without_sharing_each_input_keeps_its_own_scale(tmp_path, weights, calibration):
    graph = _quantize(tmp_path, weights, calibration, share=False).graph
    inputs, output = _concat_inputs(graph, "inner")
    scales = {_qparams(graph, i, "DequantizeLinear")[0] for i in inputs}
    assert len(scales) == 2


def test_onnxruntime_fuses_a_copying_qlinearconcat(tmp_path, weights, calibration):
    """What onnxruntime builds from the shared-scale model: QLinearConcat whose input scales equal its output's
    (its copy path), and an int8 model that still computes what the float model does."""
    model = _quantize(tmp_path, weights, calibration, share=True)
    path, optimized = tmp_path / "int8.onnx", tmp_path / "optimized.onnx"
    onnx.save(model, path)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(optimized)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(optimized)).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    shared = []
    for node in (n for n in graph.node if n.op_type == "QLinearConcat"):
        # inputs: y_scale, y_zero_point, then (x, x_scale, x_zero_point) per input
        y = (float(constants[node.input[0]]), int(constants[node.input[1]]))
        xs = [(float(constants[node.input[i + 1]]), int(constants[node.input[i + 2]]))
              for i in range(2, len(node.input), 3)]
        shared.append(sum(x == y for x in xs))
    assert sorted(shared) == [1, 2]  # outer: ab_r copied, skip requantized; inner: both copied
    pixels = calibration.pixels[:1].astype(np.float32)
    float_session = ort.InferenceSession(_model(weights).SerializeToString(), providers=["CPUExecutionProvider"])
    want, got = float_session.run(["out"], {"pixels": pixels})[0], session.run(["out"], {"pixels": pixels})[0]
    assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()
