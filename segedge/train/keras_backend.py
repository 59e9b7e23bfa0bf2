"""The original Keras model as a bench backend, so speed-ups are ratios from one run.

Lives in ``segedge.train`` because it needs TensorFlow; imported only by the
bench child for the optional Keras row, after the parent checked that
TensorFlow is installed. TensorFlow itself is imported inside functions, so
even importing this module leaves the edge install untouched.
The model is called through one traced ``tf.function`` (graph mode, no
``predict`` loop overhead): the fair counterpart of ``interpreter.invoke()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from segedge.contract.preprocess import PreprocessSpec, scale_pixels
from segedge.contract.runtime import TensorSpec
from segedge.util.errors import ModelError


def import_tensorflow() -> None:
    """Import TensorFlow up front in the bench child, so the Keras row's init time is the model load alone."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow  # noqa: F401


class KerasBackend:
    """The Keras model behind the edge backend interface (``input``, ``run``, ``close``)."""

    runtime = "keras"

    def __init__(self, path: str | os.PathLike[str], threads: int = 1, spec: PreprocessSpec | None = None) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        # Must happen before TensorFlow starts its thread pools (this is a fresh process).
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras

        # The Keras model takes scaled values; the exported artifacts take the pixels 0..255. With ``spec``,
        # uint8 pixels (what the edge's Segmenter hands every backend) are scaled here, as export's reference did.
        self.path, self.threads, self._tf, self.spec = Path(path), threads, tf, spec
        if not self.path.is_file():
            raise ModelError(f"{self.path}: Keras model not found")
        try:
            self._model = keras.models.load_model(self.path, compile=False, safe_mode=True)
        except (ValueError, OSError) as exc:
            raise ModelError(f"{self.path}: cannot load the Keras model ({exc})") from exc
        model = self._model
        self._call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        in_shape = tuple(-1 if v is None else int(v) for v in model.inputs[0].shape)
        out_shape = tuple(-1 if v is None else int(v) for v in model.outputs[0].shape)
        self.input = TensorSpec(model.inputs[0].name, in_shape, "float32")
        self.output = TensorSpec(model.outputs[0].name, out_shape, "float32")

    def prepare(self, batch: np.ndarray) -> Any:
        batch = np.asarray(batch)
        if batch.dtype == np.uint8 and self.spec is not None:
            return self._tf.convert_to_tensor(scale_pixels(batch, self.spec))
        return self._tf.convert_to_tensor(np.asarray(batch, dtype=np.float32))

    def invoke(self, tensor: Any) -> np.ndarray:
        """One graph call; ``.numpy()`` waits for the result, as ``get_tensor`` does for TFLite."""
        return self._call(tensor).numpy()

    def finish(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(raw, dtype=np.float32)

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        return self.invoke(self.prepare(batch))

    def deferred(self, raw: np.ndarray) -> tuple[np.ndarray, None]:
        """Float logits and None: what ``Segmenter.mask_from`` takes (nothing to dequantize)."""
        return self.finish(raw), None

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.finish(self.run_raw(batch))

    def close(self) -> None:
        self._model = None
        self._call = None
