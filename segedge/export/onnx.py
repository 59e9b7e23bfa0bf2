"""ONNX conversion (tf2onnx) and static int8 QDQ quantization (onnxruntime.quantization).

The ONNX model keeps Keras' NHWC float input, so the edge feeds every artifact
the same array. ``tf2onnx.convert.from_keras`` is tried first; if it fails on
a Keras 3 model the graph is traced to a concrete function with a fixed
TensorSpec and converted with ``from_function``. The int8 model is built from
the fp32 one: ``quant_pre_process`` (shape inference, optimisation), then
``quantize_static`` with QDQ nodes, per-channel int8 weights (7-bit range, see
``quantize_onnx``), uint8
activations, calibrated on the same training images as TFLite int8.
"""

from __future__ import annotations

import contextlib
import inspect
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segedge.export.calibration import CalibrationSource, OrtCalibrationReader
from segedge.export.graph import ExportModel
from segedge.export.options import CalibMethod
from segedge.export.tflite import Converted

OPSET = 17
FROM_KERAS = "tf2onnx.convert.from_keras"
FROM_FUNCTION = "tf2onnx.convert.from_function (traced tf.function, fixed TensorSpec)"
QUANTIZER = "onnxruntime.quantization.quantize_static (QDQ) after quant_pre_process"
REDUCE_RANGE_REASON = ("7-bit weights: no u8s8 int16 saturation on x86 without VNNI (3.2 mIoU points measured on "
                       "AVX2); 0.12 points, within noise, on AVX-512 VNNI")


def convert_onnx(export: ExportModel, opset: int = OPSET) -> Converted:
    """fp32 ONNX, NHWC float input named as in Keras, batch fixed like every other artifact."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec(export.input_shape, tf.float32, name=export.input_name),)
    details = {"opset": opset, "input_layout": "NHWC"}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            proto, _ = tf2onnx.convert.from_keras(export.model, input_signature=spec, opset=opset)
        return Converted(proto.SerializeToString(), FROM_KERAS, details)
    except Exception as first:  # tf2onnx raises whatever the TF graph walk raises
        try:
            function = tf.function(lambda x: export.model(x, training=False), input_signature=spec)
            with contextlib.redirect_stdout(io.StringIO()):
                proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=opset)
            details["fallback_reason"] = f"{type(first).__name__}: {first}"[:500]
            return Converted(proto.SerializeToString(), FROM_FUNCTION, details)
        except Exception as second:
            raise RuntimeError(
                f"{FROM_KERAS} failed ({type(first).__name__}: {first}); "
                f"from_function failed too ({type(second).__name__}: {second})"
            ) from second


def _ort_method(method: CalibMethod):
    from onnxruntime.quantization import CalibrationMethod

    return {CalibMethod.minmax: CalibrationMethod.MinMax, CalibMethod.entropy: CalibrationMethod.Entropy,
            CalibMethod.percentile: CalibrationMethod.Percentile}[method]


def calibrated_ranges(prepared: Path, scratch: Path, calibration: CalibrationSource, input_name: str,
                      method: CalibMethod, cache: Path | None = None) -> Any:
    """onnxruntime's calibration of ``prepared`` (``TensorsData``), read from ``cache`` when it exists.

    The same calibrator ``quantize_static`` builds (all tensors, the given method); a fresh
    result is written to ``cache`` where this onnxruntime can read it back
    (``quantize_static(calibration_cache_path=...)``), so the quantizer does not calibrate again.
    """
    from onnxruntime.quantization.calibrate import create_calibrator

    try:
        from onnxruntime.quantization.calibrate import load_tensors_data, save_tensors_data
    except ImportError:  # onnxruntime without calibration caches: quantize_static calibrates again
        load_tensors_data = save_tensors_data = None
    if cache is not None and cache.is_file() and load_tensors_data is not None:
        return load_tensors_data(cache)
    calibrator = create_calibrator(prepared, [], augmented_model_path=str(scratch / "onnx_augmented.onnx"),
                                   calibrate_method=_ort_method(method))
    calibrator.collect_data(OrtCalibrationReader(calibration, input_name))
    ranges = calibrator.compute_data()
    del calibrator
    if cache is not None and save_tensors_data is not None:
        save_tensors_data(ranges, cache)
    return ranges


def quantize_onnx(fp32_path: Path, scratch: Path, calibration: CalibrationSource, input_name: str,
                  method: CalibMethod = CalibMethod.minmax, reduce_range: bool = True,
                  nodes_to_exclude: Sequence[str] = (), calibration_cache: Path | None = None,
                  share_concat_scales: bool = True) -> Converted:
    """int8 QDQ ONNX from an fp32 ONNX file, calibrated on ``calibration``.

    ``nodes_to_exclude`` (names in the pre-processed graph, which keeps tf2onnx's node
    names) stay float: the float fallback of ``segedge.quant.fallback``, which also passes
    ``calibration_cache`` so that every K reuses one calibration (where ``quantize_static``
    takes ``calibration_cache_path``; older onnxruntime calibrates again, with the same result).

    ``share_concat_scales``: every tensor that meets a concatenation is quantized with the
    union of their calibrated ranges, so onnxruntime's QLinearConcat copies instead of
    requantizing (``segedge.export.onnx_scales``).

    ``reduce_range`` (7-bit weights) is on by default, for every CPU the bundle may run on:
    onnxruntime's u8s8 kernels on x86 without VNNI (AVX2) sum pairs of u8*s8 products in
    int16 and saturate. Measured on a 96 px demo-like model, 60 reference images: on an
    AVX2-only CPU (qemu -cpu Haswell; the earlier AVX2 build machine agrees) full-range
    weights lose 3.2 more mIoU points than reduce_range (agreement 98.54 vs 99.67 %); on
    AVX-512 VNNI the full range is 0.12 points better (99.75 vs 99.67 %), inside the
    0.11-point bootstrap noise of that reference set. ARM was not measured; onnxruntime
    documents the option for x86 without VNNI, so on ARM it should cost no more than on
    VNNI. The bundle cannot know its CPU, so on stays the default.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = scratch / "onnx_preprocessed.onnx"
    quantized = scratch / "onnx_int8.onnx"
    quant_pre_process(str(fp32_path), str(prepared))
    extra: dict[str, Any] = {}
    options: dict[str, Any] = {}
    cache_supported = "calibration_cache_path" in inspect.signature(quantize_static).parameters
    shared = 0
    if share_concat_scales:
        from segedge.export.onnx_scales import shared_range_overrides

        cache = calibration_cache
        if cache is None:  # this call's own: never another graph's ranges left in the same scratch
            cache = scratch / "onnx_calibration.json"
            cache.unlink(missing_ok=True)
        ranges = calibrated_ranges(prepared, scratch, calibration, input_name, method, cache)
        graph = onnx.load(str(prepared), load_external_data=False).graph
        overrides = shared_range_overrides(graph, {name: ranges[name].range_value for name in ranges},
                                           skip=nodes_to_exclude)
        shared = len(overrides)
        if overrides:
            options["TensorQuantOverrides"] = overrides
        if cache_supported and cache.is_file():
            extra["calibration_cache_path"] = str(cache)
    elif calibration_cache is not None and cache_supported:
        extra["calibration_cache_path"] = str(calibration_cache)
    quantize_static(
        str(prepared), str(quantized), OrtCalibrationReader(calibration, input_name),
        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=_ort_method(method), nodes_to_exclude=list(nodes_to_exclude) or None,
        extra_options=options or None, **extra,
    )
    reason = REDUCE_RANGE_REASON if reduce_range else "off as asked: u8s8 may saturate on x86 CPUs without VNNI"
    details = {"quant_format": "QDQ", "per_channel": True, "activations": "uint8", "weights": "int8",
               "reduce_range": reduce_range, "reduce_range_reason": reason, "calibration_method": method.value,
               "calibration_count": len(calibration), "preprocess": "quant_pre_process"}
    if share_concat_scales:
        details["concat_scales"] = f"shared: {shared} tensors around Concat ops calibrated to one range per concat"
    if nodes_to_exclude:
        details["nodes_to_exclude"] = list(nodes_to_exclude)
    return Converted(quantized.read_bytes(), QUANTIZER, details)
