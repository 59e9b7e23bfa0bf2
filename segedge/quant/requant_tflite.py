"""TFLite int8 re-quantized with the K worst layers left in float, and a check of what really is float.

The QuantizationDebugger's calibrated model (calibrated once, on the
bundle's own calibration ids) is re-quantized with those layers' output
tensors in ``denylisted_nodes``. The re-quantization is the very call
``TFLiteConverter`` makes for int8 (``mlir_quantize(calibrated,
input_data_type=..., output_data_type=...)``), so the model keeps the
bundle's uint8 (or int8) input and int8 output; the debugger's own
``get_nondebug_quantized_model`` would give float (or int8) io, so it is only
the route when that internal call is unavailable (the io dtype actually
written is read back from the model and recorded in the manifest). Float
layers mean the model is no longer TFLITE_BUILTINS_INT8-only: it mixes int8
builtins with float builtins and QUANTIZE/DEQUANTIZE at the borders.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segedge.quant.tflite_layers import quiet_debugger

REQUANTIZER = ("QuantizationDebugger calibrated model -> mlir_quantize(denylisted_nodes) "
               "(float fallback of the worst layers)")


def requantize(debugger: Any, float_layers: Sequence[str], int8_io: str) -> bytes:
    """The calibrated model quantized with ``float_layers`` left in float; uint8/int8 io kept."""
    import tensorflow as tf

    io_type = tf.uint8 if int8_io == "uint8" else tf.int8  # the input; logits stay int8 as export writes them
    try:
        from tensorflow.lite.python.convert import mlir_quantize
    except ImportError:  # internal module moved: the debugger's own route (float io)
        mlir_quantize = None
    with quiet_debugger():
        if mlir_quantize is not None:
            return mlir_quantize(
                debugger.calibrated_model,
                disable_per_channel=debugger.converter._experimental_disable_per_channel,
                input_data_type=io_type, output_data_type=tf.int8,
                denylisted_nodes=list(float_layers) or None)
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_layers))
        return debugger.get_nondebug_quantized_model()


def float_layer_dtypes(model: bytes | Path, names: Sequence[str]) -> dict[str, str | None]:
    """How each named layer output is computed in a TFLite model, read with LiteRT (no TensorFlow).

    ``float32`` when the tensor is float, or when it is the model's integer
    output made by a QUANTIZE op from a float tensor (a float last layer
    behind uint8 io); otherwise the tensor's integer dtype; None: not found.
    """
    from segedge.contract.runtime import tflite_interpreter_class

    interpreter_class = tflite_interpreter_class()
    source: dict[str, Any] = {"model_path": str(model)} if isinstance(model, Path) else {"model_content": model}
    resolver = getattr(importlib.import_module(interpreter_class.__module__), "OpResolverType", None)
    if resolver is not None:  # no XNNPACK: a delegated partition hides the ops inside it
        source["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = interpreter_class(**source)
    tensors = {d["name"]: d for d in interpreter.get_tensor_details()}
    dtype_of = {d["index"]: np.dtype(d["dtype"]).name for d in tensors.values()}
    producer = {out: op for op in interpreter._get_ops_details() for out in op["outputs"]}
    result: dict[str, str | None] = {}
    for name in names:
        detail = tensors.get(name)
        if detail is None:
            result[name] = None
            continue
        dtype = dtype_of[detail["index"]]
        op = producer.get(detail["index"])
        if dtype != "float32" and op and op["op_name"] == "QUANTIZE" and dtype_of.get(op["inputs"][0]) == "float32":
            dtype = "float32"
        result[name] = dtype
    return result


@dataclass
class TFLiteBuilder:
    """Writes the TFLite int8 model with given layers in float, and says which of them really are."""

    debugger: Any
    int8_io: str
    suffix: str = ".tflite"

    def build(self, names: list[str], path: Path) -> None:
        path.write_bytes(requantize(self.debugger, names, self.int8_io))

    def float_check(self, path: Path, names: list[str]) -> list[str]:
        # mlir_quantize ignores a denylisted fused TRANSPOSE_CONV (+BN/ReLU) output (measured: the op stays
        # int8 under a new name); such layers are reported as not_float rather than claimed float.
        dtypes = float_layer_dtypes(path, names)
        return [n for n in names if dtypes[n] == "float32"]
