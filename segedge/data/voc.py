"""The Pascal VOC 2012 segmentation layout, read without TensorFlow.

``ROOT/JPEGImages/<id>.jpg``, ``ROOT/SegmentationClass/<id>.png`` and
``ROOT/ImageSets/Segmentation/<split>.txt``. ``ROOT`` may also be the folder that
holds ``VOCdevkit/VOC2012`` (the unpacked tarball) or ``VOCdevkit`` itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from segedge.contract.classes import CLASSES_FILE, ClassSpec
from segedge.data.images import read_mask, read_upright, read_upright_pair
from segedge.util.errors import DataError

IMAGE_DIR = "JPEGImages"
MASK_DIR = "SegmentationClass"
AUG_MASK_DIR = "SegmentationClassAug"  # SBD's masks ('segedge data fetch sbd'), read when VOC has none
SPLIT_DIR = Path("ImageSets") / "Segmentation"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def resolve_root(root: str | os.PathLike[str]) -> Path:
    """The folder holding ``JPEGImages``, accepting the tarball's parents too."""
    base = Path(root).expanduser()
    if not base.exists():
        raise DataError(f"{base}: dataset folder not found")
    for candidate in (base, base / "VOC2012", base / "VOCdevkit" / "VOC2012"):
        if (candidate / IMAGE_DIR).is_dir():
            return candidate
    raise DataError(
        f"{base}: not a VOC dataset (no {IMAGE_DIR}/ here or under VOCdevkit/VOC2012); "
        "point at the VOC2012 folder or create one with 'segedge data synth'"
    )


def validate_id(sample_id: str, source: Path) -> str:
    """Reject ids that would read outside the dataset (``../``, absolute paths)."""
    if not _SAFE_ID.match(sample_id) or ".." in sample_id:
        raise DataError(
            f"{source}: entry {sample_id!r} is not a plain image id "
            "(path separators, '..' and absolute paths are refused)"
        )
    return sample_id


@dataclass(frozen=True)
class VocDataset:
    """A VOC-layout folder; every read names the file on failure.

    Its classes are ``ROOT/classes.json`` (beside ``JPEGImages``) when present, else VOC's 21.
    """

    root: Path
    classes: ClassSpec = field(default_factory=ClassSpec.voc)
    layout: str = "voc"

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> VocDataset:
        resolved = resolve_root(root)
        return cls(resolved, ClassSpec.for_dataset(resolved))

    @property
    def classes_file(self) -> Path:
        return self.root / CLASSES_FILE

    @property
    def has_masks(self) -> bool:
        """A VOC folder without ``SegmentationClass/`` (e.g. the test set) has images only."""
        return (self.root / MASK_DIR).is_dir() or (self.root / AUG_MASK_DIR).is_dir()

    def split_file(self, split: str) -> Path:
        return self.root / SPLIT_DIR / f"{split}.txt"

    def has_split(self, split: str) -> bool:
        return self.split_file(split).is_file()

    def ids(self, split: str) -> list[str]:
        """Ids listed in a split file, validated, order kept, duplicates refused."""
        path = self.split_file(split)
        if not path.is_file():
            raise DataError(
                f"{path}: split file not found; a VOC root needs "
                f"{SPLIT_DIR}/{split}.txt (one image id per line)"
            )
        ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not ids:
            raise DataError(f"{path}: split file is empty; list one image id per line")
        seen: set[str] = set()
        for sample_id in ids:
            validate_id(sample_id, path)
            if sample_id in seen:
                raise DataError(f"{path}: id {sample_id!r} is listed twice")
            seen.add(sample_id)
        return ids

    def image_path(self, sample_id: str) -> Path:
        return self.root / IMAGE_DIR / f"{sample_id}.jpg"

    def mask_path(self, sample_id: str) -> Path:
        """VOC's own mask; for ids only SBD annotates (train_aug), ``SegmentationClassAug``'s."""
        path = self.root / MASK_DIR / f"{sample_id}.png"
        if not path.exists():
            aug = self.root / AUG_MASK_DIR / f"{sample_id}.png"
            if aug.exists():
                return aug
        return path

    def load_image(self, sample_id: str) -> Image.Image:
        """The image upright (EXIF orientation applied) in 8-bit RGB: ``read_upright``, as every stage reads it."""
        return read_upright(self.image_path(sample_id))

    def load_mask(self, sample_id: str) -> np.ndarray:
        return read_mask(self.mask_path(sample_id), self.classes)

    def load_pair(self, sample_id: str) -> tuple[Image.Image, np.ndarray]:
        """Image and mask, both upright and checked to be the same size (``read_upright_pair``)."""
        return read_upright_pair(self.image_path(sample_id), self.mask_path(sample_id), self.classes)
