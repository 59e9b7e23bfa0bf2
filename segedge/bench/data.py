"""The images bench scores on: the bundle's reference set, or a dataset's val split (VOC or pairs layout).

Both become the same shape of data: image FILES that the product's predict
path reads (``Segmenter.predict``: decode, EXIF orientation, resize, scale,
model, upsample), and ground truth at each image's own upright resolution, so
mIoU follows the VOC protocol (original resolution, void ignored). The
reference set also carries the Keras masks at the same resolution, computed at
export through the same pipeline, that agreement is measured against, and the
class names / palette / upsampling it was built with.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from segedge.contract.manifest import REFERENCE_NAME
from segedge.contract.preprocess import PreprocessSpec
from segedge.contract.reference import Reference
from segedge.data.images import read_upright
from segedge.util.errors import DataError, ModelError


@dataclass
class EvalSet:
    name: str
    ids: list[str]
    truth: list[np.ndarray]  # upright ground truth at each image's own size, 255 = void
    keras: list[np.ndarray] | None = None  # Keras masks at the same sizes (reference set only)
    image_paths: list[Path] = field(default_factory=list)  # files predict reads (set by ``materialize``)
    originals: list[bytes] = field(default_factory=list)  # reference set: the images' file bytes
    suffixes: list[str] = field(default_factory=list)
    latency_pixels: np.ndarray | None = None  # (N, S, S, 3) uint8 model-size images, for bare invoke timing
    classes: list[str] = field(default_factory=list)  # what the reference set was built with
    palette: list[list[int]] = field(default_factory=list)
    upsample: str = ""
    has_truth: bool = True  # False: a reference set exported from images without masks (mIoU n/a)

    def __len__(self) -> int:
        return len(self.ids)

    def materialize(self, folder: Path) -> list[Path]:
        """Write the reference originals as files (byte for byte) so predict reads them as a user's photos."""
        if self.image_paths or not self.originals:
            return self.image_paths
        folder.mkdir(parents=True, exist_ok=True)
        for i, (data, suffix) in enumerate(zip(self.originals, self.suffixes, strict=True)):
            path = folder / f"{i:04d}{suffix or '.img'}"
            path.write_bytes(data)
            self.image_paths.append(path)
        return self.image_paths

    def upright(self, index: int) -> np.ndarray:
        """HxWx3 uint8 of image ``index`` as predict sees it (for the gallery)."""
        source = (Image.open(io.BytesIO(self.originals[index])) if self.originals
                  else self.image_paths[index])
        return np.asarray(read_upright(source), dtype=np.uint8)


def load_reference(bundle: str | os.PathLike[str], spec: PreprocessSpec) -> EvalSet:
    """``BUNDLE/reference.npz`` (format 2: originals + full-resolution masks) checked against the contract."""
    path = Path(bundle) / REFERENCE_NAME
    if not path.is_file():
        raise ModelError(f"{path}: reference set not found; re-export the bundle")
    ref = Reference.load(path)
    if ref.version < 2:
        raise ModelError(f"{path}: reference set from an older segedge (model-size images only); re-export the "
                         "bundle so bench can score the original images")
    n, size = len(ref.ids), (spec.height, spec.width)
    if n == 0:
        raise ModelError(f"{path}: the reference set is empty; re-export with --eval-images > 0")
    if ref.inputs.shape != (n, *size, 3) or ref.inputs.dtype != np.uint8:
        raise ModelError(f"{path}: 'inputs' is {ref.inputs.dtype}{list(ref.inputs.shape)}, the manifest implies "
                         f"uint8{[n, *size, 3]}; re-export the bundle")
    return EvalSet("reference", ref.ids, ref.truth_full, ref.keras_full, originals=ref.originals,
                   suffixes=ref.suffixes, latency_pixels=ref.inputs, classes=ref.classes, palette=ref.palette,
                   upsample=ref.upsample, has_truth=ref.has_truth)


def load_dataset_val(root: str | os.PathLike[str], limit: int | None, classes: Sequence[str],
                     manifest_path: str | os.PathLike[str], split: str = "val",
                     val_fraction: float | None = None) -> EvalSet:
    """A dataset's split (VOC or pairs layout): its image files and upright ground truth at original resolution.

    The dataset's classes (its classes.json, else VOC's 21) must be the bundle's, in name and order: a
    mask value means a class only by its index, so other classes would score nonsense.
    ``val_fraction``: the training run's, from the manifest, so a pairs dataset without split files
    gives the val images the run held out.
    """
    from segedge.data import open_dataset
    from segedge.util.progress import track

    dataset = open_dataset(root) if val_fraction is None else open_dataset(root, val_fraction)
    source = dataset.classes_file if dataset.classes_file.exists() else f"{dataset.root} (no classes.json: VOC's 21)"
    if not dataset.has_masks:
        raise DataError(f"{dataset.root}: has no masks; bench --data scores against masks, so it needs a labelled "
                        "dataset (drop --data to score the bundle's reference images)")
    mine = list(dataset.classes.names)
    theirs = list(classes)
    if mine != theirs:
        if len(mine) != len(theirs):
            why = f"{len(mine)} classes vs the bundle's {len(theirs)}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
            why = f"class {i} is {mine[i]!r} vs the bundle's {theirs[i]!r}"
        raise DataError(f"{source}: the dataset's classes differ from {manifest_path} ({why}); bench a dataset "
                        "labelled with the classes the model was trained on")
    ids = dataset.ids(split)[: limit or None]
    if not ids:
        raise DataError(f"{dataset.split_file(split)}: no images to evaluate")
    truth = [dataset.load_pair(i)[1] for i in track(ids, f"reading {split} masks")]
    return EvalSet(f"{split} ({dataset.root})", ids, truth, image_paths=[dataset.image_path(i) for i in ids])
