"""``reference.npz``: the Keras model's own answers on held-out images, for TensorFlow-free checks.

The edge and bench compare every artifact against these masks (and logits for
the first few images) without TensorFlow; export's own verification uses the
same file. Inputs are stored as ``resize_uint8`` output (pre-scaling) so the
consumer applies the manifest's scaling exactly as it would on a camera frame.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segedge.data.splits import Split
from segedge.data.voc import VocDataset
from segedge.errors import ConfigError, ExportError, ModelError
from segedge.preprocess import PreprocessSpec, resize_mask, resize_uint8, scale_pixels
from segedge.progress import stderr, track

EVAL_OPTION = "--eval-images"  # the export option that asks for the count (named in the truncation note)
LOGITS_COUNT = 8
PREDICT_CHUNK = 8


@dataclass
class Reference:
    ids: list[str]
    inputs: np.ndarray   # (N, H, W, 3) uint8, pre-scaling
    truth: np.ndarray    # (N, H, W) uint8, ground truth at model size, 255 = void
    keras: np.ndarray    # (N, H, W) uint8, Keras argmax
    logits: np.ndarray   # (K, H, W, C) float32, Keras logits of the first K ids
    split: str

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "wb") as handle:
            np.savez_compressed(handle, ids=np.asarray(self.ids, dtype=str), inputs=self.inputs,
                                truth=self.truth, keras=self.keras, logits=self.logits,
                                split=np.asarray(self.split))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Reference:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(ids=[str(i) for i in data["ids"]], inputs=data["inputs"], truth=data["truth"],
                           keras=data["keras"], logits=data["logits"],
                           split=str(data["split"]) if "split" in data else "")
        except (OSError, KeyError, ValueError) as exc:
            raise ModelError(f"{path}: not a readable reference.npz ({exc}); re-export the bundle") from exc

    def summary(self, file: str) -> dict:
        return {"file": file, "count": len(self.ids), "split": self.split, "ids": list(self.ids),
                "logits_count": int(len(self.logits))}


def reference_split(split: Split) -> tuple[str, list[str]]:
    """The held-out ids: the run's test split when it has one, else val."""
    if split.test:
        return "test", list(split.test)
    if split.val:
        return "val", list(split.val)
    raise ExportError("the run's split.json has no val or test ids: there is nothing held out to verify on")


def keras_logits(model, inputs_uint8: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Float logits of the source Keras model, chunked (inference mode, no tf.data)."""
    chunks = range(0, len(inputs_uint8), PREDICT_CHUNK)
    with warnings.catch_warnings():
        # a model saved with inputs=[x] warns that one array is not a list; the call is still exact
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        out = [np.asarray(model(scale_pixels(inputs_uint8[i : i + PREDICT_CHUNK], spec), training=False))
               for i in track(chunks, "Keras reference predictions", total=len(chunks))]
    return np.concatenate(out).astype(np.float32)


def build_reference(model, dataset: VocDataset, split: Split, spec: PreprocessSpec, count: int) -> Reference:
    """The first ``count`` held-out ids, pre-processed like inference, with Keras' answers."""
    if count < 1:
        raise ConfigError(f"{EVAL_OPTION} must be at least 1, got {count}")
    split_name, ids = reference_split(split)
    if len(ids) < count:  # say so: a silent cut makes "--eval 100" in a log mean 6 images
        stderr.print(f"note: {EVAL_OPTION} {count}: the {split_name} split has {len(ids)} images; "
                     f"verifying on {len(ids)}", markup=False, highlight=False, soft_wrap=True)
    ids = ids[:count]
    inputs, truth = [], []
    for sample_id in track(ids, "loading reference images", total=len(ids)):
        image, mask = dataset.load_pair(sample_id)
        inputs.append(resize_uint8(image, spec)[0])
        truth.append(resize_mask(mask, spec))
    pixels = np.stack(inputs)
    logits = keras_logits(model, pixels, spec)
    masks = logits.argmax(-1).astype(np.uint8)
    return Reference(ids, pixels, np.stack(truth).astype(np.uint8), masks,
                     logits[:LOGITS_COUNT].copy(), split_name)
