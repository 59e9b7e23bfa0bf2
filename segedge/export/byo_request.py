"""What the user states about a model segedge did not train: classes, palette, size, pre-processing.

Flags (``--classes``, ``--scaling``, ``--mean``/``--std`` in pixel units, ``--resize``,
``--image-size``) over the values of a ``--preprocess`` JSON file. Checked without the
model (and without TensorFlow), so a mistake is reported before any slow import.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segedge.contract.classes import ClassSpec
from segedge.contract.labels import PALETTE
from segedge.contract.preprocess import ResizeMode
from segedge.train.config import parse_image_size
from segedge.util.errors import ConfigError

PREPROCESS_KEYS = ("height", "width", "image_size", "scaling", "mean", "std", "resize", "classes", "palette")


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
        isinstance(rgb, list) and len(rgb) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in rgb)
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


def describe_request(request: ByoRequest, declared: ClassSpec | None = None) -> dict[str, Any]:
    """The merged values, checked for what needs no model: classes, scaling, resize.

    ``declared``: the classes ``--data`` declares in its ``classes.json``, used when the user names none.
    """
    values = request.merged()
    if values.get("classes") is None and declared is not None:
        values["classes"] = list(declared.names)
        values.setdefault("palette", [list(rgb) for rgb in declared.palette])
    if values.get("classes") is None:
        raise ConfigError("a .keras model needs its class names: --classes a,b,c or --classes classes.json "
                          "(or a --data folder with a classes.json)")
    if values.get("scaling") is None:
        raise ConfigError("a .keras model needs its input scaling: --scaling unit|mobilenet|meanstd "
                          "(meanstd with --mean R,G,B --std R,G,B in pixel units 0..255)")
    resize = values.get("resize") or ResizeMode.stretch.value
    if resize not in {m.value for m in ResizeMode}:
        raise ConfigError(f"--resize {resize!r} is not stretch or letterbox")
    values["resize"] = resize
    names, file_palette = parse_classes(values["classes"])
    palette = parse_palette(values.get("palette", file_palette), len(names))
    # then a dataset's classes.json rules (at most 255 names, no empty name, one distinct colour each), so a
    # bundle exported from flags holds nothing a classes.json could not
    spec = ClassSpec.from_dict({"classes": names, "palette": palette}, "--classes/--palette", ConfigError)
    values["classes"], values["palette"] = list(spec.names), [list(rgb) for rgb in spec.palette]
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
