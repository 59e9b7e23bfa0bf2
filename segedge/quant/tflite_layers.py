"""TFLite per-layer int8 error with ``tf.lite.experimental.QuantizationDebugger``.

The debugger is built from the same converter the bundle's int8 artifact came
from (``TFLiteSource`` + ``tflite.configure_converter``, calibrated on the
manifest's calibration ids). Its debug model pairs every quantized op output
with the float op run on the *same* (dequantized) input through a
``NumericVerify`` op, so each row is the error that layer adds by itself, not
the error accumulated upstream. One pass over the debug images with all
tensors preserved gives, per layer: RMSE, mean and max |error|, the
quantization scale, RMSE / scale and the correlation of the dequantized
output with the float output. The debugger (with its calibrated model) is
kept: the float fallback re-quantizes it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segedge.quant.context import QuantContext
from segedge.quant.layers import ErrorStats, LayerError, ratio, sort_rows
from segedge.util.errors import ExportError
from segedge.util.progress import track

NUMERIC_VERIFY = "NumericVerify"


@contextlib.contextmanager
def quiet_debugger() -> Iterator[None]:
    """The converter's and the debugger's C++ logging off (they print pages per call)."""
    from segedge.export.tflite import quiet_converter as tflite_quiet

    with tflite_quiet(), contextlib.redirect_stderr(io.StringIO()):
        yield


@dataclass
class TFLiteDebug:
    """The debugger (calibrated model kept: fallback re-quantizes it) and its per-layer rows."""

    debugger: Any
    rows: list[LayerError]
    converter: Any


def build_debugger(ctx: QuantContext, scratch: Path, batches: Sequence[np.ndarray] = ()) -> Any:
    """``QuantizationDebugger`` from the exact converter configuration of the bundle's int8 artifact."""
    import tensorflow as tf

    from segedge.contract.targets import TARGETS, Precision
    from segedge.export.graph import prepare_export_model, rewrite_plan
    from segedge.export.options import IntIO
    from segedge.export.run import check_model_matches, load_keras_model
    from segedge.export.tflite import TFLiteSource, configure_converter

    model = load_keras_model(ctx.run.model_path)
    check_model_matches(model, ctx.run)
    # The graph the bundle's int8 TFLite was converted from (the same partial sub-pixel rewrite).
    spec = ctx.manifest.preprocess
    export = prepare_export_model(model, plan=rewrite_plan(TARGETS["int8"]), scaling=spec if spec.pixels_in else None)
    converter, _, _ = TFLiteSource(export, scratch).converter()
    configure_converter(converter, Precision.int8, ctx.calibration, IntIO(ctx.int8_io))
    data = list(batches)
    with quiet_debugger():
        return tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([b] for b in data))


def layer_name(quantized_tensor: str) -> str:
    """The float model's tensor name (what ``denylisted_nodes`` takes) of a debug model's quantized tensor.

    The debug model renames a quantized output by appending one digit; the
    debugger's own ``layer_statistics_dump`` strips it the same way.
    """
    return quantized_tensor[:-1] if quantized_tensor[-1:].isdigit() else quantized_tensor


def tflite_layer_rows(debug_model: bytes, batches: Sequence[np.ndarray]) -> list[LayerError]:
    """One pass of the NumericVerify debug model with every tensor preserved -> per-layer rows."""
    import tensorflow as tf

    # No XNNPACK: a delegated partition keeps no intermediate tensors and hides the op types.
    with quiet_debugger():
        interpreter = tf.lite.Interpreter(
            model_content=debug_model, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # the debugger itself walks ops this way
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    producer = {out: op["op_name"] for op in ops for out in op["outputs"]}
    verify = [op for op in ops if op["op_name"] == NUMERIC_VERIFY]
    if not verify:
        raise ExportError("the TFLite debug model has no NumericVerify ops: nothing was quantized")
    stats = {op["index"]: ErrorStats() for op in verify}
    index_in = interpreter.get_input_details()[0]["index"]
    for batch in track(batches, "per-layer int8 error (TFLite)", total=len(batches)):
        interpreter.set_tensor(index_in, batch)
        interpreter.invoke()
        for op in verify:
            q_idx, f_idx = op["inputs"][:2]
            scale, zero_point = tensors[q_idx]["quantization"]
            quant = interpreter.get_tensor(q_idx).astype(np.float64)
            dequant = (quant - zero_point) * scale if scale else quant
            stats[op["index"]].add(interpreter.get_tensor(f_idx), dequant)
    rows = []
    for op in verify:
        q_idx = op["inputs"][0]
        detail, s = tensors[q_idx], stats[op["index"]]
        scale, zero_point = detail["quantization"]
        scale = float(scale) or None
        rows.append(LayerError(
            name=layer_name(detail["name"]), op=producer.get(q_idx, "?"), rmse=s.rmse, scale=scale,
            rmse_over_scale=ratio(s.rmse, scale), correlation=s.correlation, mean_error=s.mean_error,
            max_abs_error=s.max_abs, num_elements=int(np.prod(detail["shape"])),
            zero_point=int(zero_point) if scale else None))
    return sort_rows(rows)


def debug_tflite_context(ctx: QuantContext, scratch: Path, samples: int) -> tuple[TFLiteDebug, list[str]]:
    """The debugger over ``samples`` debug images and its rows, with the ids of those images."""
    ids, batches = ctx.debug_batches(samples)
    debugger = build_debugger(ctx, scratch, batches)
    rows = tflite_layer_rows(debugger.quant_model, batches)
    return TFLiteDebug(debugger, rows, debugger.converter), ids
