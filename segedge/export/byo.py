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

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from segedge.data.images import is_image_file, read_upright
from segedge.data.splits import Split
from segedge.data.voc import IMAGE_DIR, VocDataset, validate_id
from segedge.errors import ConfigError, DataError, ModelError
from segedge.labels import PALETTE
from segedge.preprocess import PreprocessSpec, ResizeMode
from segedge.train.config import parse_image_size

PREPROCESS_KEYS = ("height", "width", "image_size", "scaling", "mean", "std", "resize", "classes", "palette")


# -- the dataset ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFolder:
    """A plain folder of images (no masks): the reference set then checks agreement with Keras only."""

    root: Path
    has_masks: bool = False

    def all_ids(self) -> list[str]:
        return sorted(p.stem for p in self.root.iterdir() if p.is_file() and is_image_file(p))

    def has_split(self, split: str) -> bool:
        return False

    def ids(self, split: str) -> list[str]:
        raise DataError(f"{self.root}: a plain image folder has no {split} split")

    def image_path(self, sample_id: str) -> Path:
        validate_id(sample_id, self.root)
        matches = sorted(p for p in self.root.glob(f"{sample_id}.*") if is_image_file(p))
        if not matches:
            raise DataError(f"{self.root / sample_id}.*: image not found")
        return matches[0]

    def mask_path(self, sample_id: str) -> Path:
        raise DataError(f"{self.root}: a plain image folder has no masks")

    def load_image(self, sample_id: str) -> Image.Image:
        return read_upright(self.image_path(sample_id))


def _voc_has_masks(dataset: VocDataset, ids: list[str]) -> bool:
    return bool(ids) and all(dataset.mask_path(i).is_file() for i in ids)


def _open_data(root: str | os.PathLike[str]):
    """THE one place BYO export opens ``--data``: a VOC folder, else a plain folder of images (no masks).

    Returns an object with ``ids(split)``, ``has_split``, ``image_path``, ``mask_path``, ``load_image``
    and ``has_masks``. (To be switched to ``segedge.data.open_dataset`` when that lands.)
    """
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"--data {path}: dataset folder not found")
    try:
        return VocDataset.open(path)
    except DataError:
        pass
    folder = ImageFolder(path / "images" if (path / "images").is_dir() else path)
    if not folder.all_ids():
        raise DataError(f"--data {path}: no images here (nor a VOC {IMAGE_DIR}/ folder); point --data at a "
                        "dataset folder or a folder of .jpg/.png images")
    return folder


def dataset_has_masks(dataset, ids: list[str]) -> bool:
    """Whether the reference images have ground-truth masks (else mIoU is not available)."""
    if isinstance(dataset, VocDataset):
        return _voc_has_masks(dataset, ids)
    return bool(getattr(dataset, "has_masks", False))


def byo_split(dataset, eval_count: int) -> Split:
    """Held-out (reference) and calibration ids: the dataset's val/test and train lists, else all images.

    With no split lists the first ``eval_count`` images (sorted by name, at most all but one) are the
    reference set and the rest calibrate, so the two never overlap.
    """
    if dataset.has_split("train") and (dataset.has_split("val") or dataset.has_split("test")):
        test = dataset.ids("test") if dataset.has_split("test") else []
        val = dataset.ids("val") if dataset.has_split("val") else []
        return Split("official", 0, dataset.ids("train"), val, test)
    ids = dataset.all_ids() if hasattr(dataset, "all_ids") else _voc_ids(dataset)
    if len(ids) < 2:
        raise DataError(f"--data {dataset.root}: {len(ids)} image(s); export needs at least 2 (one held out to "
                        "verify on, one to calibrate int8)")
    held = min(eval_count, len(ids) - 1)
    return Split("folder", 0, ids[held:], ids[:held], [])


def _voc_ids(dataset: VocDataset) -> list[str]:
    return sorted(p.stem for p in (dataset.root / IMAGE_DIR).glob("*.jpg"))


# -- what the user states ------------------------------------------------------------------------------


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} {path}: not valid JSON ({exc.msg}, line {exc.lineno}); fix the file") from exc


def parse_classes(value: str | list | None, source: str = "--classes") -> tuple[list[str] | None, list | None]:
    """``a,b,c``, a JSON file (a list of names, or {"classes": [...], "palette": [...]}), or a list."""
    if value is None:
        return None, None
    palette = None
    if isinstance(value, str) and value.lower().endswith(".json"):
        data = _read_json(Path(value).expanduser(), source)
        if isinstance(data, dict):
            palette = data.get("palette")
            data = data.get("classes")
        value = data
        source = f"{source} file"
    names = _split_list(value) if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(f"{source}: give class names as a,b,c or a JSON list of names, got {value!r}")
    names = [n.strip() for n in names]
    if len(names) < 2:
        raise ConfigError(f"{source}: a segmentation model needs at least 2 classes, got {names}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: class names must be unique, got {names}")
    return names, palette


def parse_palette(value: Any, count: int, source: str = "--palette") -> list[list[int]]:
    """A JSON file or list of [R, G, B] per class; default: VOC's bit-interleaved palette."""
    if value is None:
        return [list(rgb) for rgb in PALETTE[:count]]
    if isinstance(value, (str, os.PathLike)):
        value = _read_json(Path(value).expanduser(), source)
    ok = isinstance(value, list) and all(
        isinstance(rgb, list) and len(rgb) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in rgb)
        for rgb in value)
    if not ok:
        raise ConfigError(f"{source}: give one [R, G, B] (0..255) per class, e.g. [[0, 0, 0], [128, 0, 0]]")
    if len(value) < count:
        raise ConfigError(f"{source}: {len(value)} colours for {count} classes; give one per class")
    return [list(rgb) for rgb in value[:count]]


def _numbers(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in _split_list(text)]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: give numbers R,G,B (pixel units 0..255)") from None


@dataclass
class ByoRequest:
    """What the user said about the model: flags, over a ``--preprocess`` JSON file's values."""

    classes: str | list | None = None
    palette: str | list | None = None
    image_size: str | None = None
    scaling: str | None = None
    mean: str | None = None
    std: str | None = None
    resize: str | None = None
    preprocess_file: Path | None = None

    def merged(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.preprocess_file is not None:
            data = _read_json(Path(self.preprocess_file).expanduser(), "--preprocess")
            if not isinstance(data, dict):
                raise ConfigError(f"--preprocess {self.preprocess_file}: expected a JSON object with keys "
                                  f"from {', '.join(PREPROCESS_KEYS)}")
            unknown = sorted(set(data) - set(PREPROCESS_KEYS))
            if unknown:
                raise ConfigError(f"--preprocess {self.preprocess_file}: unknown keys {unknown}; "
                                  f"use {', '.join(PREPROCESS_KEYS)}")
            values.update(data)
            if "height" in data or "width" in data:
                if "height" not in data or "width" not in data:
                    raise ConfigError(f"--preprocess {self.preprocess_file}: give both height and width")
                values["image_size"] = [data["height"], data["width"]]
        flags = {"classes": self.classes, "palette": self.palette, "image_size": self.image_size,
                 "scaling": self.scaling, "resize": self.resize,
                 "mean": _numbers(self.mean, "--mean"), "std": _numbers(self.std, "--std")}
        values.update({k: v for k, v in flags.items() if v is not None})
        return values


# -- the model ---------------------------------------------------------------------------------------------


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
    classes: list[str]
    palette: list[list[int]]
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


def describe_request(request: ByoRequest) -> dict[str, Any]:
    """The merged values, checked for what needs no model: classes, scaling, resize."""
    values = request.merged()
    if values.get("classes") is None:
        raise ConfigError("a .keras model needs its class names: --classes a,b,c or --classes classes.json")
    if values.get("scaling") is None:
        raise ConfigError("a .keras model needs its input scaling: --scaling unit|mobilenet|meanstd "
                          "(meanstd with --mean R,G,B --std R,G,B in pixel units 0..255)")
    resize = values.get("resize") or ResizeMode.stretch.value
    if resize not in {m.value for m in ResizeMode}:
        raise ConfigError(f"--resize {resize!r} is not stretch or letterbox")
    values["resize"] = resize
    names, file_palette = parse_classes(values["classes"])
    values["classes"] = names
    values["palette"] = parse_palette(values.get("palette", file_palette), len(names))
    values["size"] = None if values.get("image_size") is None else parse_image_size_any(values["image_size"])
    return values


def parse_image_size_any(value: Any) -> tuple[int, int]:
    """N or HxW, any positive sizes (the 32-multiple rule is segedge's U-Net's, not every model's)."""
    try:
        return parse_image_size(value)
    except ConfigError:
        pass
    parts = list(value) if isinstance(value, (list, tuple)) else str(value).lower().split("x")
    try:
        numbers = [int(p) for p in parts] * (2 if len(parts) == 1 else 1)
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 2 or min(numbers) < 1:
        raise ConfigError(f"--image-size {value!r} is not N or HxW (height x width, e.g. 160x224)")
    return numbers[0], numbers[1]


def open_byo(model_path: Path, model, data_root: Path, request: ByoRequest, eval_count: int) -> ByoModel:
    """Check the model against what the user said and build the export source (one-line errors)."""
    values = describe_request(request)
    size = check_byo_model(model, model_path, values["size"])
    spec = PreprocessSpec(height=size[0], width=size[1], scaling=values["scaling"], resize=values["resize"],
                          mean=values.get("mean"), std=values.get("std"))
    dataset = _open_data(data_root)
    split = byo_split(dataset, eval_count)
    return ByoModel(model_path, spec, values["classes"], values["palette"], split, Path(data_root),
                    num_outputs=len(values["classes"]))
