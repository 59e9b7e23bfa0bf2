"""SBD (Hariharan et al. 2011) masks and the ``train_aug`` split VOC segmentation papers train on.

SBD's ``benchmark_RELEASE/dataset`` holds ``img/<id>.jpg``, ``cls/<id>.mat`` and its own
``train.txt`` / ``val.txt`` (8,498 + 2,857 ids, all VOC 2011 images). Each ``.mat`` is a
MATLAB v5 file whose struct ``GTcls`` has a ``Segmentation`` field: a uint8 HxW class-index
image (0 background, 1-20 the VOC classes, no void border).

What ``segedge data fetch sbd ROOT`` writes into a VOC2012 ``ROOT`` (the layout DeepLab
and most VOC code read):

* ``SegmentationClassAug/<id>.png``: an index PNG (VOC palette) for every SBD id, and for
  every id VOC annotates itself (``SegmentationClass/``) a copy of VOC's own mask, which
  wins over SBD's (finer, with VOC's void borders): the union of both id sets.
* ``ImageSets/Segmentation/train_aug.txt``: VOC train + SBD train + SBD val, minus VOC val,
  sorted: 10,582 ids on the real data (the set DeepLab and mmsegmentation call trainaug).
* ``JPEGImages/<id>.jpg`` only for SBD ids VOC 2012 lacks (none on the real data; added,
  never overwritten).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from segedge.contract.labels import NUM_CLASSES, VOID
from segedge.data.images import mask_to_image
from segedge.data.voc import validate_id
from segedge.util.errors import DataError
from segedge.util.optional import require

TRAIN_AUG = "train_aug"
SBD_ROOT = Path("benchmark_RELEASE") / "dataset"
SBD_EXTRA = "data"  # the pyproject extra that brings scipy (MATLAB file reader)


def train_aug_ids(voc_train: Iterable[str], voc_val: Iterable[str], sbd_train: Iterable[str],
                  sbd_val: Iterable[str]) -> list[str]:
    """(VOC train | SBD train | SBD val) - VOC val, sorted: the literature's train_aug."""
    return sorted((set(voc_train) | set(sbd_train) | set(sbd_val)) - set(voc_val))


def read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: not found; the SBD archive should hold {SBD_ROOT}/{path.name}")
    ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [validate_id(sample_id, path) for sample_id in ids]


def read_cls_mat(path: Path) -> np.ndarray:
    """``GTcls.Segmentation`` of one SBD ``cls/<id>.mat`` as a uint8 HxW array (labels checked)."""
    sio = require("scipy.io", SBD_EXTRA)
    try:
        data = sio.loadmat(str(path), variable_names=["GTcls"], simplify_cells=True)
        mask = np.asarray(data["GTcls"]["Segmentation"])
    except (KeyError, TypeError, IndexError) as exc:
        raise DataError(f"{path}: no GTcls.Segmentation in this .mat file (not an SBD cls file)") from exc
    except (ValueError, OSError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable MATLAB file ({exc}); re-fetch SBD") from exc
    if mask.ndim != 2 or mask.size == 0:
        raise DataError(f"{path}: GTcls.Segmentation has shape {mask.shape}, expected a 2-D image")
    if mask.dtype.kind not in "ui" or mask.min() < 0 or ((mask >= NUM_CLASSES) & (mask != VOID)).any():
        raise DataError(f"{path}: GTcls.Segmentation holds labels outside 0-{NUM_CLASSES - 1} and {VOID}")
    return mask.astype(np.uint8)


def write_aug_masks(sbd_dataset: Path, voc_root: Path, out_dir: Path, ids: Iterable[str]) -> int:
    """Fill ``out_dir`` (a fresh folder) with one index PNG per SBD id plus VOC's own masks.

    Each SBD mask is checked against its image's size (VOC's JPEG when present, else SBD's).
    Returns the number of PNGs written.
    """
    from segedge.util.progress import track

    ids = list(ids)
    written = 0
    voc_masks = voc_root / "SegmentationClass"
    for sample_id in track(ids, "Converting SBD masks", total=len(ids)):
        own = voc_masks / f"{sample_id}.png"
        if own.is_file():
            continue  # VOC's own annotation is copied below
        mat = sbd_dataset / "cls" / f"{sample_id}.mat"
        mask = read_cls_mat(mat)
        image = voc_root / "JPEGImages" / f"{sample_id}.jpg"
        if not image.is_file():
            image = sbd_dataset / "img" / f"{sample_id}.jpg"
        with Image.open(image) as probe:
            width, height = probe.size
        if mask.shape != (height, width):
            raise DataError(f"{mat}: mask is {mask.shape[1]}x{mask.shape[0]} but {image} is {width}x{height}")
        mask_to_image(mask).save(out_dir / f"{sample_id}.png", format="PNG")
        written += 1
    if voc_masks.is_dir():
        for own in sorted(voc_masks.glob("*.png")):
            shutil.copyfile(own, out_dir / own.name)
            written += 1
    return written


def add_missing_images(sbd_dataset: Path, voc_root: Path, ids: Iterable[str]) -> int:
    """Copy SBD's JPEG for ids VOC's ``JPEGImages`` lacks (add-only, each file atomically)."""
    from segedge.util import fileio
    added = 0
    for sample_id in ids:
        target = voc_root / "JPEGImages" / f"{sample_id}.jpg"
        if target.exists():
            continue
        source = sbd_dataset / "img" / f"{sample_id}.jpg"
        if not source.is_file():
            raise DataError(f"{source}: not found, and {target} is missing too; re-fetch SBD")
        with fileio.atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        added += 1
    return added


def sbd_ids(sbd_dataset: Path) -> tuple[list[str], list[str]]:
    """SBD's own train and val id lists."""
    return read_ids(sbd_dataset / "train.txt"), read_ids(sbd_dataset / "val.txt")
