"""Where a BYO export's images come from: ``--data`` as a VOC folder, or a plain folder of images.

``_open_data`` is the one place it is opened (to become ``segedge.data.open_dataset``).
A folder of images has no masks: the reference set then holds no ground truth and
bench reports mIoU as n/a. ``byo_split`` keeps calibration and reference ids apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from segedge.contract.classes import ClassSpec
from segedge.data.dataset import open_dataset
from segedge.data.images import is_image_file, read_upright
from segedge.data.splits import Split
from segedge.data.voc import IMAGE_DIR, VocDataset, validate_id
from segedge.util.errors import DataError


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
    """Masks for any reference id: then every one must have its mask (a missing one is an error naming it)."""
    return any(dataset.mask_path(i).is_file() for i in ids)


def _open_data(root: str | os.PathLike[str]):
    """THE one place BYO export opens ``--data``: a dataset (VOC or pairs layout, ``open_dataset``), else a
    plain folder of images (no masks)."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"--data {path}: dataset folder not found")
    try:
        return open_dataset(path)
    except DataError:
        if (path / IMAGE_DIR).is_dir() or (path / "masks").is_dir():
            raise  # a VOC or pairs dataset with a fault: its own error names the file
    folder = ImageFolder(path / "images" if (path / "images").is_dir() else path)
    if not folder.all_ids():
        raise DataError(f"--data {path}: no images here (nor a VOC {IMAGE_DIR}/ folder); point --data at a "
                        "dataset folder or a folder of .jpg/.png images")
    return folder


def declared_classes(dataset) -> ClassSpec | None:
    """The classes ``dataset``'s classes.json declares; None for a plain image folder or a dataset without the
    file (VOC's 21 by default there, not a statement about the user's model)."""
    classes_file = getattr(dataset, "classes_file", None)
    return dataset.classes if classes_file is not None and classes_file.is_file() else None


def check_dataset_classes(dataset, names: list[str]) -> None:
    """A dataset whose masks label other classes than the model's cannot score it: one line naming both."""
    declared = getattr(dataset, "classes", None)
    if declared is None or not getattr(dataset, "has_masks", False):
        return
    if list(declared.names) != list(names):
        file = dataset.classes_file
        source = file if file.is_file() else f"{dataset.root} (no classes.json: VOC's 21)"
        raise DataError(f"--data {source}: its masks label {len(declared.names)} classes, the model has "
                        f"{len(names)} ({', '.join(names[:5])}); give --data a dataset whose classes.json lists "
                        "the model's classes, or a folder of images only")


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
