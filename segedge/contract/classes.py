"""A dataset's classes as data: names, palette and void, read from ``DATASET/classes.json``.

VOC's 21 labels used to be constants every stage imported; a dataset of your
own has other classes, so the dataset declares them and every stage (train
head size, data check, mask reading, export metadata, bench) takes them from
here. A folder without ``classes.json`` is VOC's 21 classes, so VOC needs no
file. No numpy, no TensorFlow: the edge install and the CLI's option parsing
can import it.

``classes.json``::

    {"classes": ["background", "road", "car"],   # index = label value in the masks
     "palette": [[0, 0, 0], [128, 64, 128], [0, 0, 142]],  # optional: VOC's colours
     "void": 255}                                 # optional: the "not labelled" value

In memory segedge marks void as 255 whatever the file declares (a mask's
declared void value is read as 255), so predictions and metrics have one
ignore value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segedge.contract.labels import PALETTE, VOC_CLASSES, VOID
from segedge.util.errors import DataError, SegedgeError

CLASSES_FILE = "classes.json"
MAX_CLASSES = 255  # label values are uint8 and one value must stay free for void
KEYS = ("classes", "palette", "void")

RGB = tuple[int, int, int]


def default_palette(count: int) -> tuple[RGB, ...]:
    """The VOC devkit's bit-interleaved colours for indices ``0..count-1`` (what VOC masks use)."""
    return tuple(PALETTE[:count])


@dataclass(frozen=True)
class ClassSpec:
    """The label set a dataset, a run and a bundle share: index ``i`` is ``names[i]`` drawn ``palette[i]``."""

    names: tuple[str, ...]
    palette: tuple[RGB, ...]
    void: int = VOID

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def voc(cls) -> ClassSpec:
        """Pascal VOC's 21 classes, its palette and void 255: what a folder without classes.json holds."""
        return cls(tuple(VOC_CLASSES), default_palette(len(VOC_CLASSES)), VOID)

    @classmethod
    def default(cls, count: int) -> ClassSpec:
        """``background``, ``class1``, ... ``class{count-1}`` in VOC's colours (what ``data synth`` writes)."""
        if count == len(VOC_CLASSES):
            return cls.voc()
        return cls.from_dict({"classes": ["background", *(f"class{i}" for i in range(1, count))]})

    @property
    def is_voc(self) -> bool:
        return self == ClassSpec.voc()

    def to_dict(self) -> dict[str, Any]:
        """The ``classes.json`` body (always with palette and void, so the file says everything)."""
        return {"classes": list(self.names), "palette": [list(rgb) for rgb in self.palette], "void": self.void}

    @classmethod
    def from_dict(cls, data: Any, source: str | os.PathLike[str] = CLASSES_FILE,
                  error: type[SegedgeError] = DataError) -> ClassSpec:
        """Validate a parsed ``classes.json``; every problem is one ``error`` naming ``source``."""
        where = str(source)
        if not isinstance(data, dict):
            raise error(f"{where}: expected a JSON object like {{\"classes\": [\"background\", \"car\"]}}, "
                        f"got {type(data).__name__}")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise error(f"{where}: unknown key(s) {unknown}; allowed: {list(KEYS)}")
        names = _names(data.get("classes"), where, error)
        void = _void(data.get("void", VOID), len(names), where, error)
        raw_palette = data.get("palette")
        palette = default_palette(len(names)) if raw_palette is None else _palette(raw_palette, len(names), where,
                                                                                     error)
        return cls(names, palette, void)

    @classmethod
    def load(cls, path: str | os.PathLike[str], error: type[SegedgeError] = DataError) -> ClassSpec:
        """A ``classes.json`` file, validated (``error`` names the file on any problem)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise error(f"{path}: file not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"{path}: cannot be read ({exc})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise error(f"{path}: not valid JSON ({exc}); write it like "
                        "{\"classes\": [\"background\", \"car\"]}") from exc
        return cls.from_dict(data, path, error)

    @classmethod
    def for_dataset(cls, root: str | os.PathLike[str]) -> ClassSpec:
        """``root/classes.json`` when present, else VOC's 21 classes."""
        path = Path(root) / CLASSES_FILE
        return cls.load(path) if path.exists() else cls.voc()

    def colour_to_index(self) -> dict[RGB, int]:
        """RGB colour -> label value for colour-coded masks: the declared palette, and VOC's void colour -> 255.

        Palette colours are distinct (checked), so the mapping is one to one.
        """
        lookup: dict[RGB, int] = {tuple(rgb): index for index, rgb in enumerate(self.palette)}  # type: ignore[misc]
        lookup.setdefault(PALETTE[VOID], VOID)
        return lookup

    def flat_palette(self) -> list[int]:
        """768 ints for ``Image.putpalette``: the declared colours, then VOC's for the other indices (255 = void)."""
        colours = list(self.palette) + list(PALETTE[len(self.palette):])
        return [channel for rgb in colours for channel in rgb]

    def differs(self, other: ClassSpec) -> str:
        """Why ``other`` has other classes (count or names, in order); "" when they agree."""
        if len(self) != len(other):
            return f"{len(self)} classes vs {len(other)}"
        changed = [i for i, (a, b) in enumerate(zip(self.names, other.names, strict=True)) if a != b]
        if changed:
            i = changed[0]
            return f"class {i} is {self.names[i]!r} vs {other.names[i]!r}"
        return ""


def _names(value: Any, where: str, error: type[SegedgeError]) -> tuple[str, ...]:
    if value is None:
        raise error(f"{where}: no \"classes\" list; write the class names in label order, "
                    "e.g. {\"classes\": [\"background\", \"car\"]}")
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise error(f"{where}: \"classes\" must be a list of names (strings), got {value!r:.80}")
    names = [name.strip() for name in value]
    if len(names) < 2:
        raise error(f"{where}: {len(names)} class(es); a segmentation model needs at least 2 "
                    "(e.g. background and one object)")
    if len(names) > MAX_CLASSES:
        raise error(f"{where}: {len(names)} classes; at most {MAX_CLASSES} fit in 8-bit masks "
                    "(one value is kept for void)")
    for index, name in enumerate(names):
        if not name:
            raise error(f"{where}: class {index} has an empty name")
    repeat = _first_repeat(names)
    if repeat:
        first, index = repeat
        raise error(f"{where}: class name {names[index]!r} appears twice (indices {first} and {index}); "
                    "names must be unique")
    return tuple(names)


def _first_repeat(items: Sequence[Any]) -> tuple[int, int] | None:
    """(first index, repeat index) of the first item seen twice, or None."""
    seen: dict[Any, int] = {}
    for index, item in enumerate(items):
        if item in seen:
            return seen[item], index
        seen[item] = index
    return None


def _void(value: Any, count: int, where: str, error: type[SegedgeError]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise error(f"{where}: \"void\" must be an integer 0-255 (the mask value for unlabelled pixels), "
                    f"got {value!r}")
    if value < count:
        raise error(f"{where}: \"void\" {value} is a class index (0..{count - 1}); pick a value from {count} "
                    f"to 255 (usually 255)")
    return value


def _palette(value: Any, count: int, where: str, error: type[SegedgeError]) -> tuple[RGB, ...]:
    if not isinstance(value, list):
        raise error(f"{where}: \"palette\" must be a list of [r, g, b] colours, got {type(value).__name__}")
    if len(value) != count:
        raise error(f"{where}: \"palette\" has {len(value)} colours for {count} classes; give one [r, g, b] "
                    "per class, or leave \"palette\" out for VOC's colours")
    colours: list[RGB] = []
    for index, rgb in enumerate(value):
        if (not isinstance(rgb, Sequence) or isinstance(rgb, str) or len(rgb) != 3
                or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in rgb)):
            raise error(f"{where}: palette entry {index} is {rgb!r}; expected [r, g, b] with integers 0-255")
        colours.append((int(rgb[0]), int(rgb[1]), int(rgb[2])))
    repeat = _first_repeat(colours)
    if repeat:
        first, index = repeat
        raise error(f"{where}: palette colour {list(colours[index])} is used by classes {first} and {index}; "
                    "each class needs its own colour")
    return tuple(colours)

