"""The one step from "Keras model as trained" to "model the converters see".

Every converter (TFLite, tf2onnx) is fed the result of
``prepare_export_model`` so that graph-level decisions are made once:
today a fixed batch of 1 (a dynamic batch makes each TRANSPOSE_CONV compute
its output shape at run time and fall out of XNNPACK, ~3x slower); later,
decoder rewrites such as transposed conv -> sub-pixel conv belong here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FIXED_BATCH = 1


@dataclass
class ExportModel:
    """The graph handed to converters, plus what was done to get it (recorded in the manifest)."""

    model: Any  # keras.Model with a fixed-batch input
    batch: int
    height: int
    width: int
    channels: int
    input_name: str
    rewrites: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.height, self.width, self.channels)

    def details(self) -> dict[str, Any]:
        return {"fixed_batch": self.batch, "graph_rewrites": list(self.rewrites)}


def _clone_on_fixed_input(model, batch: int):
    """Functional models: a flat copy on a fixed-batch Input, weights copied (not shared)."""
    import keras

    source = model.inputs[0]
    fixed = keras.Input(batch_shape=(batch, *source.shape[1:]), dtype=source.dtype, name=_input_name(model))
    clone = keras.models.clone_model(model, input_tensors=fixed)
    clone.set_weights(model.get_weights())
    return clone


def _wrap_on_fixed_input(model, batch: int):
    """Any other model (subclassed, nested): call it once on a fixed-batch Input."""
    import keras

    source_shape = tuple(model.inputs[0].shape[1:])
    fixed = keras.Input(batch_shape=(batch, *source_shape), name=_input_name(model))
    return keras.Model(fixed, model(fixed, training=False), name=f"{model.name}_fixed")


def _input_name(model) -> str:
    name = getattr(model.inputs[0], "name", "") or "image"
    return name.split(":")[0]


def prepare_export_model(model, *, batch: int = FIXED_BATCH) -> ExportModel:
    """Keras model -> the fixed-batch inference graph every converter consumes.

    The clone keeps layer names and weights, so the converted models compute
    exactly what the source does (verification compares against the source).
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        from segedge.errors import ModelError

        raise ModelError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "segedge exports single-image, single-output segmentation models"
        )
    try:
        fixed = _clone_on_fixed_input(model, batch)
        rewrites: list[str] = []
    except (TypeError, ValueError, AttributeError):
        fixed = _wrap_on_fixed_input(model, batch)
        rewrites = ["wrapped (model could not be cloned)"]
    _, height, width, channels = (int(v) for v in fixed.inputs[0].shape)
    return ExportModel(fixed, batch, height, width, channels, _input_name(fixed), rewrites)
