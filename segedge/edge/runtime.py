"""Old home of :mod:`segedge.runtime`, kept as an alias while branches that import it are merged.

The runtimes moved down to ``segedge.runtime`` because export (verification),
the edge predictor, bench and the Keras bench backend all run artifacts with
them, and export and train may not import the edge stage (tests/test_layout.py).
New code imports ``segedge.runtime``; delete this module once nothing imports it.
"""

from __future__ import annotations

from segedge.runtime import (
    Backend,
    OnnxBackend,
    TensorSpec,
    TFLiteBackend,
    dequantize,
    open_backend,
    ort_session_options,
    quantize,
    tflite_interpreter_class,
)

__all__ = ["Backend", "OnnxBackend", "TFLiteBackend", "TensorSpec", "dequantize", "open_backend",
           "ort_session_options", "quantize", "tflite_interpreter_class"]
