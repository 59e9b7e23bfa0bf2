"""``open_dataset(root)``: the one way other code opens a dataset, whichever layout it is in.

Two layouts (docs/stage-notes.md, "Data: your own data and classes"): VOC's (``JPEGImages/``,
``SegmentationClass/``, ``ImageSets/Segmentation/``) and "pairs"
(``images/`` + ``masks/``). Both read their classes from ``classes.json``
(VOC's 21 without it) and offer the same methods, so train, export and bench
never ask which layout they have.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from segedge.contract.classes import ClassSpec
from segedge.data.pairs import DEFAULT_VAL_FRACTION, IMAGES_DIR, MASKS_DIR, PairsDataset, is_pairs_root
from segedge.data.voc import IMAGE_DIR, VocDataset, resolve_root
from segedge.util.errors import DataError

LAYOUTS = ("voc", "pairs")


class Dataset(Protocol):
    """What ``VocDataset`` and ``PairsDataset`` both offer."""

    root: Path
    classes: ClassSpec
    layout: str

    @property
    def has_masks(self) -> bool: ...

    @property
    def classes_file(self) -> Path: ...

    def ids(self, split: str) -> list[str]: ...

    def has_split(self, split: str) -> bool: ...

    def split_file(self, split: str) -> Path: ...

    def image_path(self, sample_id: str) -> Path: ...

    def mask_path(self, sample_id: str) -> Path: ...

    def load_image(self, sample_id: str) -> Image.Image: ...

    def load_mask(self, sample_id: str) -> np.ndarray: ...

    def load_pair(self, sample_id: str) -> tuple[Image.Image, np.ndarray]: ...


def open_dataset(root: str | os.PathLike[str], val_fraction: float = DEFAULT_VAL_FRACTION) -> Dataset:
    """The dataset at ``root``: VOC layout when ``JPEGImages/`` is there (or under VOCdevkit/VOC2012), else pairs.

    ``val_fraction`` is the pairs layout's validation share when it has no split files.
    """
    base = Path(root).expanduser()
    if not base.exists():
        raise DataError(f"{base}: dataset folder not found")
    try:
        voc_root = resolve_root(base)
    except DataError:
        voc_root = None
    if voc_root is not None:
        return VocDataset.open(voc_root)
    if is_pairs_root(base):
        return PairsDataset.open(base, val_fraction)
    raise DataError(
        f"{base}: not a dataset: no {IMAGE_DIR}/ (VOC layout) and no {IMAGES_DIR}/ + {MASKS_DIR}/ (pairs layout); "
        "point at the dataset folder or create one with 'segedge data synth'"
    )
