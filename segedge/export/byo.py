"""Bring your own Keras model: a ``.keras`` file segedge did not train, described on the command line.

A run folder tells export everything (size, scaling, classes, split). A model
from elsewhere carries only its graph, so the user states the rest: the class
names (``--classes a,b,c`` or a JSON file), the pre-processing (``--scaling
unit|mobilenet|meanstd``, ``--mean``/``--std`` in pixel units, ``--resize``; or a
``--preprocess`` JSON file) and a dataset folder (``--data``) for calibration and
the reference set. The input size comes from the model when its input shape is
static (a contradicting ``--image-size`` is refused), and must be given when it is
dynamic. ``ByoModel`` offers what ``export_bundle`` reads from a ``RunFolder``, so
the bundle is the same as a run's: manifest, reference.npz, every format.

Assumed about the model: one input (N, H, W, 3) in RGB order holding the scaled
values, one output (N, H, W, C) of per-class scores at the input's size, logits
or softmax probabilities (either way the mask is their argmax; a final softmax
is detected and recorded). No TensorFlow import at module level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segedge.contract.classes import ClassSpec
from segedge.contract.preprocess import PreprocessSpec
from segedge.data.splits import Split
from segedge.export.byo_data import (
    _open_data,
    byo_split,
    check_dataset_classes,
    dataset_has_masks,
    declared_classes,
)
from segedge.export.byo_request import ByoRequest, describe_request
from segedge.util.errors import ConfigError, ModelError

__all__ = ["ByoModel", "ByoRequest", "check_byo_model", "check_byo_output", "dataset_has_masks",
           "fixed_size_model", "is_softmax_output", "open_byo"]


def _static(dim) -> int | None:
    return None if dim is None else int(dim)


def is_softmax_output(model) -> bool:
    """True when the model's last layer ends in a softmax (probabilities, not logits)."""
    import keras

    layer = model.layers[-1] if model.layers else None
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"


def check_byo_model(model, path: Path, size: tuple[int, int] | None) -> tuple[int, int]:
    """The model's input (H, W): one RGB input and one per-pixel class-score output, at the same size."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"{path}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         "segedge exports models with one image input and one output")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or _static(shape[3]) != 3:
        raise ModelError(f"{path}: the model input is {shape}; segedge exports (N, H, W, 3) RGB inputs "
                         "(channels last)")
    height, width = _static(shape[1]), _static(shape[2])
    if height is not None and width is not None:
        if size is not None and size != (height, width):
            raise ConfigError(f"--image-size {size[0]}x{size[1]} contradicts {path}'s input {height}x{width} "
                              "(HxW); drop --image-size or give the model's size")
        return height, width
    if size is None:
        raise ConfigError(f"{path}: the model input size is dynamic {shape[1:3]}; pass --image-size HxW")
    for have, want, name in ((height, size[0], "height"), (width, size[1], "width")):
        if have is not None and have != want:
            raise ConfigError(f"--image-size {size[0]}x{size[1]}: the model's input {name} is {have}")
    return size


def check_byo_output(model, path: Path, size: tuple[int, int], classes: list[str]) -> int:
    """The output is (N, H, W, C) at the input size with C = the number of classes (one-line errors)."""
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 4:
        raise ModelError(f"{path}: the model output is {shape}; segedge exports per-pixel class scores "
                         "(N, H, W, classes)")
    channels = _static(shape[3])
    if channels != len(classes):
        raise ConfigError(f"{path}: the model has {channels} output channels but --classes names {len(classes)} "
                          f"classes ({', '.join(classes[:6])}{', ...' if len(classes) > 6 else ''}); give one name "
                          "per output channel")
    out = (_static(shape[1]), _static(shape[2]))
    if out != size:
        shown = "x".join("?" if v is None else str(v) for v in out)
        raise ModelError(f"{path}: the model output is {shown} but its input {size[0]}x{size[1]} (HxW); segedge "
                         f"needs scores at the input size: end the model with keras.layers.Resizing({size[0]}, "
                         f"{size[1]})")
    return channels


def fixed_size_model(model, size: tuple[int, int]):
    """The model on an input of static (H, W) (unchanged when it already is): converters need one size."""
    import keras

    if tuple(_static(d) for d in model.inputs[0].shape[1:3]) == size:
        return model
    fixed = keras.Input((*size, 3), name=model.inputs[0].name.split(":")[0])
    try:  # a flat copy keeps the first convolution visible to the pixel-input fold
        copy = keras.models.clone_model(model, input_tensors=[fixed] if isinstance(model.input, list) else fixed)
        copy.set_weights(model.get_weights())
        return copy
    except (TypeError, ValueError, AttributeError):
        fixed = keras.Input((*size, 3), name=fixed.name.split(":")[0])
        return keras.Model(fixed, model(fixed, training=False), name=f"{model.name}_{size[0]}x{size[1]}")


@dataclass
class ByoModel:
    """A ``.keras`` file plus the user's description: what ``export_bundle`` reads from a ``RunFolder``."""

    model_path: Path
    spec: PreprocessSpec
    classes: ClassSpec  # what the user stated (or --data's classes.json declared), as a run's classes are held
    split: Split
    data_root: Path
    num_outputs: int
    output_kind: str = "logits"
    void_handling: str = "ignore"
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.model_path

    def dataset(self, data_root: str | os.PathLike[str] | None = None):
        return _open_data(data_root if data_root is not None else self.data_root)

    def source_model(self, sha256: str) -> dict[str, Any]:
        return {"file": self.model_path.name, "path": str(self.model_path.resolve()), "sha256": sha256,
                "bytes": self.model_path.stat().st_size, "origin": "bring your own (not trained by segedge)",
                "output": self.output_kind}


def open_byo(model_path: Path, model, data_root: Path, request: ByoRequest, eval_count: int) -> ByoModel:
    """Check the model against what the user said and build the export source (one-line errors)."""
    dataset = _open_data(data_root)
    values = describe_request(request, declared_classes(dataset))
    check_dataset_classes(dataset, values["classes"])
    size = check_byo_model(model, model_path, values["size"])
    spec = PreprocessSpec(height=size[0], width=size[1], scaling=values["scaling"], resize=values["resize"],
                          mean=values.get("mean"), std=values.get("std"))
    split = byo_split(dataset, eval_count)
    classes = ClassSpec(tuple(values["classes"]), tuple(tuple(rgb) for rgb in values["palette"]))
    return ByoModel(model_path, spec, classes, split, Path(data_root),
                    num_outputs=len(values["classes"]),
                    output_kind="softmax" if is_softmax_output(model) else "logits")
