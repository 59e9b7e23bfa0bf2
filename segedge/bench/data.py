"""The images bench scores on: the bundle's reference set, or a VOC folder's val split.

Both become the same shape of data (uint8 inputs at model size, pre-scaling,
and ground truth at model size) so every artifact, and the Keras row, is fed
and scored identically. The reference set also carries the Keras masks that
agreement is measured against, without TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from segedge.errors import DataError, ModelError
from segedge.labels import VOID
from segedge.manifest import REFERENCE_NAME
from segedge.preprocess import PreprocessSpec, ResizeMode, resize_mask, resize_uint8


@dataclass
class EvalSet:
    name: str
    ids: list[str]
    inputs: np.ndarray  # (N, H, W, 3) uint8, resize_uint8 output
    truth: np.ndarray  # (N, H, W) uint8 at model size, 255 = void
    keras: np.ndarray | None = None  # (N, H, W) uint8 Keras argmax (reference set only)
    image_paths: list[Path] | None = None  # original files, for end-to-end timing

    def __len__(self) -> int:
        return len(self.ids)


def load_reference(bundle: str | os.PathLike[str], spec: PreprocessSpec) -> EvalSet:
    """``BUNDLE/reference.npz`` checked against the contract (keys, shapes, dtypes)."""
    path = Path(bundle) / REFERENCE_NAME
    if not path.is_file():
        raise ModelError(f"{path}: reference set not found; re-export the bundle")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("ids", "inputs", "truth", "keras") if k not in data.files]
            if missing:
                raise ModelError(f"{path}: missing array(s) {', '.join(missing)}; re-export the bundle")
            ids = [str(v) for v in data["ids"]]
            inputs, truth, keras = data["inputs"], data["truth"], data["keras"]
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable .npz ({exc}); re-export the bundle") from exc
    n, size = len(ids), (spec.height, spec.width)
    expected = {"inputs": (n, *size, 3), "truth": (n, *size), "keras": (n, *size)}
    for name, array in (("inputs", inputs), ("truth", truth), ("keras", keras)):
        if array.shape != expected[name] or array.dtype != np.uint8:
            raise ModelError(
                f"{path}: '{name}' is {array.dtype}{list(array.shape)}, the manifest implies "
                f"uint8{list(expected[name])}; re-export the bundle"
            )
    if n == 0:
        raise ModelError(f"{path}: the reference set is empty; re-export with --eval-images > 0")
    return EvalSet("reference", ids, inputs, truth, keras)


def letterbox_mask(mask: np.ndarray, spec: PreprocessSpec, image_size: tuple[int, int]) -> np.ndarray:
    """Ground truth placed where ``resize_uint8`` puts the image, padding as void."""
    ratio = min(spec.width / image_size[0], spec.height / image_size[1])
    w = max(1, int(round(image_size[0] * ratio)))
    h = max(1, int(round(image_size[1] * ratio)))
    canvas = np.full((spec.height, spec.width), VOID, dtype=np.uint8)
    left, top = (spec.width - w) // 2, (spec.height - h) // 2
    small = Image.fromarray(np.asarray(mask, dtype=np.uint8), "L").resize((w, h), Image.NEAREST)
    canvas[top : top + h, left : left + w] = np.asarray(small, dtype=np.uint8)
    return canvas


def load_voc_val(root: str | os.PathLike[str], spec: PreprocessSpec, limit: int | None = None,
                 split: str = "val") -> EvalSet:
    """A VOC folder's split, preprocessed with the manifest's spec; truth at model size."""
    from segedge.data import VocDataset
    from segedge.progress import track

    dataset = VocDataset.open(root)
    ids = dataset.ids(split)[: limit or None]
    if not ids:
        raise DataError(f"{dataset.split_file(split)}: no images to evaluate")
    inputs = np.empty((len(ids), spec.height, spec.width, 3), dtype=np.uint8)
    truth = np.empty((len(ids), spec.height, spec.width), dtype=np.uint8)
    for i, sample_id in enumerate(track(ids, f"reading {split} images")):
        image, mask = dataset.load_pair(sample_id)
        inputs[i] = resize_uint8(image, spec)[0]
        if spec.resize == ResizeMode.letterbox.value:
            truth[i] = letterbox_mask(mask, spec, image.size)
        else:
            truth[i] = resize_mask(mask, spec)
    return EvalSet(f"{split} ({dataset.root})", ids, inputs, truth,
                   image_paths=[dataset.image_path(i) for i in ids])
