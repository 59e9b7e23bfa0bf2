"""The reference set's file format (``BUNDLE/reference.npz``): written by export, read by bench and quant.

numpy only (no TensorFlow), so the edge-side bench can read what export wrote.
Format 2 holds each held-out image's ORIGINAL file bytes, the upright ground
truth and the Keras masks at the image's own resolution (ragged arrays stored
flat with their shapes), the model-size arrays export's verification and the
quantization tools compare raw outputs on, and the class names, palette and
upsampling mode the Keras masks were made with.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segedge.util import fileio
from segedge.util.errors import ModelError

FORMAT_VERSION = 2  # 1: model-size arrays only; 2: + originals and full-resolution truth / Keras masks


def flatten(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged 2-D uint8 arrays -> (concatenated values, (N, 2) shapes)."""
    shapes = np.asarray([a.shape for a in arrays], dtype=np.int64).reshape(len(arrays), 2)
    flat = np.concatenate([np.asarray(a, np.uint8).ravel() for a in arrays]) if arrays else np.zeros(0, np.uint8)
    return flat, shapes


def unflatten(flat: np.ndarray, shapes: np.ndarray) -> list[np.ndarray]:
    """The inverse of ``flatten``; ValueError when the sizes do not add up."""
    counts = [int(h) * int(w) for h, w in shapes]
    if sum(counts) != flat.size:
        raise ValueError(f"{flat.size} values for shapes totalling {sum(counts)} pixels")
    ends = np.cumsum([0, *counts])
    return [flat[ends[i] : ends[i + 1]].reshape(int(h), int(w)) for i, (h, w) in enumerate(shapes)]


@dataclass
class Reference:
    ids: list[str]
    inputs: np.ndarray   # (N, S, S, 3) uint8 at model size, pre-scaling (upright image, resize_uint8)
    truth: np.ndarray    # (N, S, S) uint8 ground truth at model size (nearest), 255 = void
    keras: np.ndarray    # (N, S, S) uint8 Keras argmax at model size (raw index)
    logits: np.ndarray   # (K, S, S, C) float32, Keras logits of the first K ids
    split: str
    originals: list[bytes] = field(default_factory=list)  # each image's file bytes, as in the dataset
    suffixes: list[str] = field(default_factory=list)  # ".jpg": the original file's suffix
    truth_full: list[np.ndarray] = field(default_factory=list)  # upright ground truth, original size
    keras_full: list[np.ndarray] = field(default_factory=list)  # Keras mask, original size (device pipeline)
    classes: list[str] = field(default_factory=list)
    palette: list[list[int]] = field(default_factory=list)
    upsample: str = ""
    version: int = FORMAT_VERSION
    has_truth: bool = True  # False: the dataset had no masks (truth all void); mIoU is not available

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: str | os.PathLike[str]) -> None:
        blob = np.frombuffer(b"".join(self.originals), dtype=np.uint8)
        offsets = np.cumsum([0, *[len(b) for b in self.originals]]).astype(np.int64)
        truth_flat, shapes = flatten(self.truth_full)
        keras_flat, keras_shapes = flatten(self.keras_full)
        if not np.array_equal(shapes, keras_shapes):
            raise ValueError("truth and Keras masks at full resolution differ in size")
        with open(path, "wb") as handle:
            np.savez_compressed(
                handle, ids=np.asarray(self.ids, dtype=str), inputs=self.inputs, truth=self.truth,
                keras=self.keras, logits=self.logits, split=np.asarray(self.split),
                originals=blob, original_offsets=offsets, suffixes=np.asarray(self.suffixes, dtype=str),
                sizes=shapes, truth_full=truth_flat, keras_full=keras_flat,
                classes=np.asarray(self.classes, dtype=str), palette=np.asarray(self.palette, dtype=np.int64),
                upsample=np.asarray(self.upsample), version=np.asarray(self.version),
                has_truth=np.asarray(self.has_truth))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Reference:
        """Any version; the full-resolution fields are empty for a version-1 file (check ``version``)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                ref = cls(ids=[str(i) for i in data["ids"]], inputs=data["inputs"], truth=data["truth"],
                          keras=data["keras"], logits=data["logits"],
                          split=str(data["split"]) if "split" in data else "",
                          version=int(data["version"]) if "version" in data else 1)
                if ref.version >= 2:
                    offsets, blob = data["original_offsets"], data["originals"].tobytes()
                    ref.originals = [blob[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
                    ref.suffixes = [str(s) for s in data["suffixes"]]
                    ref.truth_full = unflatten(data["truth_full"], data["sizes"])
                    ref.keras_full = unflatten(data["keras_full"], data["sizes"])
                    ref.classes = [str(c) for c in data["classes"]]
                    ref.palette = [[int(v) for v in rgb] for rgb in data["palette"]]
                    ref.upsample = str(data["upsample"])
                    ref.has_truth = bool(data["has_truth"]) if "has_truth" in data else True
                    if not len(ref.originals) == len(ref.truth_full) == len(ref.ids):
                        raise ValueError(f"{len(ref.ids)} ids, {len(ref.originals)} originals, "
                                         f"{len(ref.truth_full)} masks")
                return ref
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path}: not a readable reference.npz ({exc}); re-export the bundle") from exc

    def summary(self, file: str, path: str | os.PathLike[str] | None = None) -> dict:
        """The manifest's ``reference`` section; with ``path`` (the written file) its size and sha256."""
        sizes = [list(t.shape) for t in self.truth_full]
        info = {"file": file, "format_version": self.version, "count": len(self.ids), "split": self.split,
                "ids": list(self.ids), "logits_count": int(len(self.logits)), "upsample": self.upsample,
                "original_sizes_hw": sizes,
                "original_bytes": int(sum(len(b) for b in self.originals)), "has_truth": self.has_truth}
        if path is not None:
            info["bytes"] = Path(path).stat().st_size
            info["sha256"] = fileio.sha256_file(path)
        return info
