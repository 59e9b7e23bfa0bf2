"""The "pairs" layout: ``images/`` and ``masks/`` with matching file stems, what most own datasets look like.

::

    DATASET/images/<stem>.jpg|.jpeg|.png
    DATASET/masks/<stem>.png        single-channel class indices (palette 'P' or grayscale 'L')
    DATASET/classes.json            optional (VOC's 21 classes without it)
    DATASET/splits/train.txt, val.txt   optional, one stem per line

Without split files the images are split by ratio (``val_fraction``): every
stem is ranked by a hash of its name and the first ``round(n * fraction)`` are
validation, so the split depends on the names only, not on file order or the
file system (``segedge train`` records it in ``RUN/split.json`` all the same).
With only one of the two split files, the other is every remaining stem.
A folder without ``masks/`` is images only (``has_masks`` False): fine for
calibrating an exported model, an error for training.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from segedge.contract.classes import CLASSES_FILE, ClassSpec
from segedge.data.images import read_mask, read_upright, read_upright_pair
from segedge.data.voc import validate_id
from segedge.util.errors import ConfigError, DataError

IMAGES_DIR = "images"
MASKS_DIR = "masks"
SPLITS_DIR = "splits"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIX = ".png"
DEFAULT_VAL_FRACTION = 0.2
RATIO_SPLITS = ("train", "val", "trainval")


def is_pairs_root(root: Path) -> bool:
    return (root / IMAGES_DIR).is_dir()


def check_val_fraction(value: float, option: str = "--val-fraction") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{option} must be a number between 0 and 1 (exclusive), got {value!r}")
    return float(value)


def _stem_rank(stem: str) -> bytes:
    return hashlib.sha256(stem.encode("utf-8")).digest()


def ratio_split(stems: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """(train, val) stems, sorted: val is the ``round(n * fraction)`` stems (at least 1, at most n-1)
    whose names hash lowest, so the split is a function of the names alone."""
    check_val_fraction(val_fraction)
    if len(stems) < 2:
        return sorted(stems), []
    n_val = min(len(stems) - 1, max(1, round(len(stems) * val_fraction)))
    ranked = sorted(stems, key=_stem_rank)
    val = set(ranked[:n_val])
    return sorted(s for s in stems if s not in val), sorted(val)


def _index_images(folder: Path) -> dict[str, Path]:
    """stem -> image file in ``images/``; two files with one stem are refused (which is meant?)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        validate_id(path.stem, path)
        if path.stem in found:
            raise DataError(f"{path}: stem {path.stem!r} also names {found[path.stem].name}; keep one image per "
                            "stem so its mask is unambiguous")
        found[path.stem] = path
    return found


@dataclass
class PairsDataset:
    """An ``images/`` + ``masks/`` folder with the same interface as ``VocDataset``."""

    root: Path
    classes: ClassSpec = field(default_factory=ClassSpec.voc)
    val_fraction: float = DEFAULT_VAL_FRACTION
    images: dict[str, Path] = field(default_factory=dict, repr=False)
    layout: str = "pairs"

    @classmethod
    def open(cls, root: str | os.PathLike[str], val_fraction: float = DEFAULT_VAL_FRACTION) -> PairsDataset:
        base = Path(root).expanduser()
        if not is_pairs_root(base):
            raise DataError(f"{base}: not a pairs dataset (no {IMAGES_DIR}/ folder)")
        images = _index_images(base / IMAGES_DIR)
        if not images:
            raise DataError(f"{base / IMAGES_DIR}: no images ({', '.join(IMAGE_SUFFIXES)}); put the photos here "
                            f"and their masks in {MASKS_DIR}/ under the same stems")
        return cls(base, ClassSpec.for_dataset(base), check_val_fraction(val_fraction), images)

    @property
    def classes_file(self) -> Path:
        return self.root / CLASSES_FILE

    @property
    def has_masks(self) -> bool:
        return (self.root / MASKS_DIR).is_dir()

    def split_file(self, split: str) -> Path:
        return self.root / SPLITS_DIR / f"{split}.txt"

    def has_split(self, split: str) -> bool:
        """train, val and trainval always exist (from files or by ratio); other splits only as files."""
        return split in RATIO_SPLITS or self.split_file(split).is_file()

    def stems(self) -> list[str]:
        """Every image stem, sorted."""
        return sorted(self.images)

    def _listed(self, split: str) -> list[str]:
        path = self.split_file(split)
        ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not ids:
            raise DataError(f"{path}: split file is empty; list one image stem per line")
        seen: set[str] = set()
        for stem in ids:
            validate_id(stem, path)
            if stem in seen:
                raise DataError(f"{path}: stem {stem!r} is listed twice")
            if stem not in self.images:
                raise DataError(f"{path}: stem {stem!r} has no image in {self.root / IMAGES_DIR}/ "
                                f"({'/'.join(IMAGE_SUFFIXES)}); fix the line or add the image")
            seen.add(stem)
        return ids

    def ids(self, split: str) -> list[str]:
        """Stems of ``split``: from ``splits/<split>.txt`` when present, else the ratio split of every image."""
        if self.split_file(split).is_file():
            return self._listed(split)
        if split not in RATIO_SPLITS:
            raise DataError(f"{self.split_file(split)}: split file not found; a pairs dataset has train, val and "
                            f"trainval (by ratio or from {SPLITS_DIR}/train.txt and val.txt)")
        everything = self.stems()
        if split == "trainval":
            return everything
        other = "val" if split == "train" else "train"
        if self.split_file(other).is_file():  # the stems the other file does not list
            taken = set(self._listed(other))
            rest = [s for s in everything if s not in taken]
            if not rest:
                raise DataError(f"{self.split_file(other)}: lists every image; nothing is left for {split}")
            return rest
        train, val = ratio_split(everything, self.val_fraction)
        return train if split == "train" else val

    def image_path(self, sample_id: str) -> Path:
        path = self.images.get(sample_id)
        return path if path is not None else self.root / IMAGES_DIR / f"{sample_id}.jpg"

    def mask_path(self, sample_id: str) -> Path:
        return self.root / MASKS_DIR / f"{sample_id}{MASK_SUFFIX}"

    def orphan_masks(self) -> list[Path]:
        """Masks whose stem has no image (a typo in a name, or a deleted photo)."""
        if not self.has_masks:
            return []
        return sorted(p for p in (self.root / MASKS_DIR).iterdir()
                      if p.suffix.lower() == MASK_SUFFIX and p.stem not in self.images)

    def _require_mask(self, sample_id: str) -> Path:
        path = self.mask_path(sample_id)
        if not self.has_masks:
            raise DataError(f"{self.root / MASKS_DIR}: not found; this dataset has images only, and this step "
                            f"needs masks: add {MASKS_DIR}/<stem>.png for every image")
        if not path.is_file():
            raise DataError(f"{path}: mask not found for {self.image_path(sample_id).name}; every image needs "
                            f"{MASKS_DIR}/<stem>.png (class indices), or remove the image")
        return path

    def load_image(self, sample_id: str) -> Image.Image:
        """The image upright in 8-bit RGB (``read_upright``, as every stage reads it)."""
        return read_upright(self.image_path(sample_id))

    def load_mask(self, sample_id: str) -> np.ndarray:
        return read_mask(self._require_mask(sample_id), self.classes)

    def load_pair(self, sample_id: str) -> tuple[Image.Image, np.ndarray]:
        """Image and mask, both upright and checked to be the same size (``read_upright_pair``)."""
        return read_upright_pair(self.image_path(sample_id), self._require_mask(sample_id), self.classes)
