"""TFLite conversion: fp32, fp16 weights, dynamic-range int8 weights, full integer int8.

``TFLiteConverter.from_keras_model`` (TF 2.21, Keras 3) exports the model to
a temporary SavedModel on *every* call, and that export is ~85 % of its time
(measured: 35 of 41 s at 64 px). So a bundle exports the fixed-batch graph to
a SavedModel once (``keras.Model.export``, the same route from_keras_model
takes internally) and converts every TFLite target with
``from_saved_model``. If that export fails, ``from_keras_model`` is the
fallback. Which route produced a file is recorded in its manifest entry.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segedge.contract.targets import Precision
from segedge.export.calibration import CalibrationSource, representative_dataset
from segedge.export.graph import ExportModel
from segedge.export.options import IntIO

FROM_SAVED_MODEL = "tf.lite.TFLiteConverter.from_saved_model (keras Model.export)"
FROM_KERAS = "tf.lite.TFLiteConverter.from_keras_model"
# The int8 model's logits stay int8 whatever ``--int8-io`` says (it picks the input type: uint8
# camera frames as they are, or int8). The edge dequantizes logits with the output's own scale
# and zero point either way; a uint8 output made the converter append an int8 -> uint8 QUANTIZE
# over every logit, which XNNPACK does not take: 0.8 ms of 7.1 at 224 px, one thread (AVX-512 VNNI).
INT8_OUTPUT = "int8 logits (no uint8 requantization at the output)"


@dataclass
class Converted:
    """A converted model's bytes and how it was made."""

    data: bytes
    converter: str
    details: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def quiet_converter():
    """Keep Keras/TF Python prints ("Saved artifact at ...") and converter warnings off the terminal."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class TFLiteSource:
    """The SavedModel all TFLite targets of one bundle convert from, exported on first use."""

    def __init__(self, export: ExportModel, scratch: Path) -> None:
        self.export, self.scratch = export, scratch
        self._saved: Path | None = None
        self._failure: str | None = None

    def _ensure_saved_model(self) -> dict[str, Any]:
        """Export once; the call that did it reports its time (it is part of that target's seconds)."""
        if self._saved is not None or self._failure is not None:
            return {}
        path = self.scratch / "savedmodel"
        start = time.perf_counter()
        try:
            import tensorflow as tf

            # Keras 3 makes the exported batch dimension None unless told otherwise,
            # which is exactly the dynamic batch that pushes TRANSPOSE_CONV out of XNNPACK.
            signature = [tf.TensorSpec(self.export.input_shape, tf.float32, name=self.export.input_name)]
            with quiet_converter():
                self.export.model.export(str(path), format="tf_saved_model", verbose=False,
                                         input_signature=signature)
            self._saved = path
        except Exception as exc:  # Keras/TF raise many types while tracing
            self._failure = f"{type(exc).__name__}: {exc}"[:500]
        return {"savedmodel_export_seconds": round(time.perf_counter() - start, 2)}

    def converter(self) -> tuple[Any, str, dict[str, Any]]:
        """A fresh converter, the route's name, and why a fallback was taken (if it was)."""
        import tensorflow as tf

        details = self._ensure_saved_model()
        if self._saved is not None:
            return tf.lite.TFLiteConverter.from_saved_model(str(self._saved)), FROM_SAVED_MODEL, details
        details["fallback_reason"] = f"Model.export failed: {self._failure}"
        return tf.lite.TFLiteConverter.from_keras_model(self.export.model), FROM_KERAS, details


def configure_converter(converter, precision: Precision, calibration: CalibrationSource | None, int8_io: IntIO) -> dict:
    import tensorflow as tf

    details: dict[str, Any] = {}
    if precision is Precision.fp32:
        return details
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision is Precision.fp16:
        converter.target_spec.supported_types = [tf.float16]
        details["weights"] = "float16"
    elif precision is Precision.dynamic:
        details["weights"] = "int8 (dynamic range; activations float)"
    elif precision is Precision.int8:
        if calibration is None:
            raise ValueError("full-integer int8 needs calibration images")
        converter.representative_dataset = representative_dataset(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8 if int8_io is IntIO.uint8 else tf.int8
        converter.inference_output_type = tf.int8  # INT8_OUTPUT: no QUANTIZE outside XNNPACK
        details.update({"ops": "TFLITE_BUILTINS_INT8", "int8_io": int8_io.value, "output": INT8_OUTPUT,
                        "calibration_method": "minmax (TFLite converter)",
                        "calibration_count": len(calibration)})
    return details


def convert_tflite(source: TFLiteSource, precision: Precision, calibration: CalibrationSource | None = None,
                   int8_io: IntIO = IntIO.uint8) -> Converted:
    """One TFLite flatbuffer of the fixed-batch export graph."""
    converter, route, details = source.converter()
    details.update(configure_converter(converter, precision, calibration, int8_io))
    with quiet_converter():
        data = converter.convert()
    return Converted(data, route, details)
