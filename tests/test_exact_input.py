"""Issue 16, item 3: every pixel level reaches the exported models exactly and distinctly.

The exported graphs take pixels 0..255 and hold the scaling in their first
convolution (``segedge.export.pixels``). The expectation checked here is the
pixel value itself. No formula from the code under test is reused: the level
``p`` must arrive as ``p``. The 256 levels are spread over a model-size image,
so each level appears at many positions and in all three channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segedge.contract.manifest import load_manifest
from segedge.contract.preprocess import PreprocessSpec
from segedge.contract.runtime import dequantize, open_backend
from segedge.export.calibration import CalibrationSource


def all_levels(height: int, width: int) -> np.ndarray:
    """(1, H, W, 3) uint8 holding every level 0..255 (H*W >= 256), channels shifted so each sees all levels."""
    flat = np.arange(height * width) % 256
    channels = [np.roll(flat, shift) for shift in (0, 85, 170)]
    return np.stack(channels, axis=-1).reshape(1, height, width, 3).astype(np.uint8)


def test_manifest_records_the_pixel_contract(tiny_bundle: Path):
    manifest = load_manifest(tiny_bundle)
    assert manifest.preprocess.input == "pixels"
    assert manifest.preprocess.to_dict()["input"] == "pixels"
    for name, info in manifest.artifacts.items():
        assert any("pixel input 0..255" in note for note in info.details["graph_rewrites"]), name
        if info.input.dtype in ("uint8", "int8"):  # identity on 0..255: scale 1, zero point 0 (uint8) or -128 (int8)
            assert info.input.scale == 1.0, name
            assert info.input.zero_point == (0 if info.input.dtype == "uint8" else -128), name


def test_float_artifacts_get_the_pixels_unchanged_and_still_match_keras(tiny_bundle: Path):
    manifest = load_manifest(tiny_bundle)
    spec = manifest.preprocess
    pixels = all_levels(spec.height, spec.width)
    floats = [n for n, i in manifest.artifacts.items() if i.input.dtype == "float32"]
    assert {"fp32", "onnx"} <= set(floats)
    for name in floats:
        backend = open_backend(tiny_bundle / manifest.artifacts[name].file)
        try:
            tensor = np.asarray(backend.prepare(pixels))
        finally:
            backend.close()
        assert tensor.dtype == np.float32
        assert np.array_equal(tensor, pixels.astype(np.float32)), name
        if manifest.artifacts[name].precision == "fp32":
            assert manifest.artifacts[name].verify["agreement"] >= 0.999, name


def _first_conv_input(interpreter) -> int:
    ops = interpreter._get_ops_details()
    first = next(op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    return int(first["inputs"][0])


def _edge_tensor(bundle: Path, name: str):
    """(manifest entry, all 256 levels as a model-size image, the tensor the edge hands the model, its spec)."""
    manifest = load_manifest(bundle)
    info = manifest.artifacts[name]
    pixels = all_levels(manifest.preprocess.height, manifest.preprocess.width)
    backend = open_backend(bundle / info.file)
    try:
        return info, pixels, np.asarray(backend.prepare(pixels)), backend.input
    finally:
        backend.close()


def test_tflite_int8_first_convolution_sees_every_level(tiny_bundle: Path):
    """The quantized input tensor holds p, and so does the tensor the first convolution reads."""
    from segedge.contract.runtime import tflite_interpreter_class

    info, pixels, tensor, input_spec = _edge_tensor(tiny_bundle, "int8")
    assert tensor.dtype == np.dtype(input_spec.dtype)
    seen = dequantize(tensor, input_spec)
    assert np.array_equal(seen, pixels.astype(np.float32))  # level p arrives as p
    assert len(np.unique(tensor)) == 256

    # Without XNNPACK, so that intermediate tensors are kept and readable.
    from ai_edge_litert.interpreter import OpResolverType

    interpreter = tflite_interpreter_class()(
        model_path=str(tiny_bundle / info.file), experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    index = _first_conv_input(interpreter)
    detail = next(d for d in interpreter.get_tensor_details() if d["index"] == index)
    scale, zero_point = detail["quantization"]
    conv_in = (interpreter.get_tensor(index).astype(np.float64) - zero_point) * scale
    # The conv reads the padded pixels: the image sits at the top left, the pad after it.
    inner = conv_in[:, : pixels.shape[1], : pixels.shape[2], :]
    assert np.array_equal(inner, pixels.astype(np.float64))
    assert len(np.unique(inner)) == 256


def _expose_input_quantization(model_bytes: bytes, input_name: str) -> tuple[bytes, float, int]:
    """The int8 ONNX model with its input QuantizeLinear's output as an extra graph output."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == input_name)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    scale, zero_point = float(inits[node.input[1]]), int(inits[node.input[2]])
    elem = onnx.helper.np_dtype_to_tensor_dtype(inits[node.input[2]].dtype)
    model.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], elem, None))
    return model.SerializeToString(), scale, zero_point


def test_onnx_int8_input_quantization_is_the_identity(tiny_bundle: Path):
    pytest.importorskip("onnx")
    import onnxruntime as ort

    info, pixels, tensor, _ = _edge_tensor(tiny_bundle, "onnx-int8")
    assert tensor.dtype == np.float32 and np.array_equal(tensor, pixels.astype(np.float32))
    exposed, scale, zero_point = _expose_input_quantization((tiny_bundle / info.file).read_bytes(), info.input.name)
    assert (scale, zero_point) == (1.0, 0)
    session = ort.InferenceSession(exposed, providers=["CPUExecutionProvider"])
    quantized = session.run(None, {info.input.name: tensor})[-1]
    assert np.array_equal(quantized.astype(np.int64), pixels.astype(np.int64))
    assert len(np.unique(quantized)) == 256


def test_scaled_floats_from_older_callers_reach_a_pixel_model_as_the_same_pixels(tiny_bundle: Path):
    """``prepare`` still takes x = p / 127.5 - 1 floats; they become the pixels again, not a rounded neighbour."""
    manifest = load_manifest(tiny_bundle)
    spec = manifest.preprocess
    pixels = all_levels(spec.height, spec.width)
    scaled = pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    backend = open_backend(tiny_bundle / manifest.artifacts["int8"].file)
    try:
        assert np.array_equal(backend.prepare(scaled), backend.prepare(pixels))
    finally:
        backend.close()


def test_calibration_range_is_0_to_255_whatever_the_images_hold():
    spec = PreprocessSpec(8, 8, "mobilenet", input="pixels")
    rng = np.random.default_rng(0)
    pixels = rng.integers(40, 200, (3, 8, 8, 3)).astype(np.uint8)  # never 0, never 255
    batches = list(CalibrationSource(["a", "b", "c"], pixels, spec).batches())
    assert all(b.dtype == np.float32 and b.shape == (1, 8, 8, 3) for b in batches)
    assert min(b.min() for b in batches) == 0.0 and max(b.max() for b in batches) == 255.0
    assert np.array_equal(batches[1][0], pixels[1]) and np.array_equal(batches[2][0], pixels[2])
    changed = batches[0][0] != pixels[0]
    assert changed.any(axis=-1).sum() == 2  # two pixels of one image, nothing else
    scaled = list(CalibrationSource(["a"], pixels[:1], PreprocessSpec(8, 8, "mobilenet")).batches())
    assert np.allclose(scaled[0], pixels[:1] / 127.5 - 1.0, atol=1e-6)


def test_pixel_graph_computes_the_trained_model_on_scaled_pixels():
    """The folded first convolution (pad 127.5, 'valid', W*s, b+o*sum W) against Keras on p / 127.5 - 1."""
    pytest.importorskip("tensorflow")
    import keras

    from segedge.export.graph import prepare_export_model

    keras.utils.set_random_seed(3)
    for stride, size in ((2, 32), (1, 30), (2, 33)):  # even, odd pads; 'same' pads after, then before
        inputs = keras.Input((size, size, 3), name="image")
        x = keras.layers.Conv2D(6, 3, strides=stride, padding="same", use_bias=stride == 1)(inputs)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(x))
        spec = PreprocessSpec(size, size, "mobilenet")
        export = prepare_export_model(model, scaling=spec)
        assert "scaling folded" in export.rewrites[-1]
        pixels = np.random.default_rng(stride).integers(0, 256, (1, size, size, 3)).astype(np.float32)
        expected = np.asarray(model(pixels / 127.5 - 1.0, training=False))
        got = np.asarray(export.model(pixels, training=False))
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))


def test_bench_input_exact_script_runs_and_counts_levels():
    """The documented benchmark runs (tiny settings) and reports the levels the two input paths keep."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "benchmarks/bench_input_exact.py", "--size", "32", "--frames", "3"],
                            cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "int8 after: pixels as they are" in result.stdout
    # 2/255 steps with zero point 127 put every level half-way between two codes: some merge; pixels: none.
    line = next(x for x in result.stdout.splitlines() if x.startswith("distinct input codes"))
    before, after = (int(v) for v in line.replace(",", "").split()[-3::2])
    assert before < 256 and after == 256
