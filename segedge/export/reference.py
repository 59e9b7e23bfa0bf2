"""``reference.npz``: held-out ORIGINAL images, their full-resolution truth, and the Keras model's answers.

The gate's promise is that the device still matches the original model, so
the reference set holds what the device is given (each held-out image as its
original encoded bytes, as in the dataset) and what the original model says
about it at the image's own resolution, computed through the very pipeline the
device runs: decode -> EXIF orientation -> resize -> scale -> model -> upsample
(the manifest's mode) -> argmax (``read_upright``, ``segedge.contract.preprocess``,
``segedge.contract.upsample``). bench decodes the same bytes with ``segedge predict``'s
code and compares, so a bug in any of those steps shows.

Model-size arrays (``inputs``, ``truth``, ``keras``, ``logits``) are kept too:
export verification and the quantization tools compare raw model outputs.
The file also records the class names, palette and upsampling it was built
with, so a manifest edited after export is caught.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from segedge.contract.labels import VOID
from segedge.contract.preprocess import Placement, PreprocessSpec, resize_mask, resize_uint8, scale_pixels
from segedge.contract.reference import Reference
from segedge.contract.upsample import full_size_mask
from segedge.data.dataset import Dataset
from segedge.data.images import read_upright, read_upright_pair
from segedge.data.splits import Split
from segedge.util.errors import ConfigError, ExportError
from segedge.util.progress import stderr, track

__all__ = ["Reference", "build_reference", "keras_logits", "reference_split"]

EVAL_OPTION = "--eval-images"  # the export option that asks for the count (named in the truncation note)
LOGITS_COUNT = 2  # float logits are most of the file (8 x 224 x 224 x 21 x 4 bytes = 34 MB); 2 still check conversion
PREDICT_CHUNK = 8


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


@dataclass
class _Held:
    """One held-out pair as the device sees it: file bytes, upright image, upright truth."""

    sample_id: str
    data: bytes
    suffix: str
    image: Image.Image
    truth: np.ndarray


def _read_held(dataset: Dataset, sample_id: str, has_masks: bool = True) -> _Held:
    path = dataset.image_path(sample_id)
    data = path.read_bytes()
    image = read_upright(Image.open(io.BytesIO(data)))  # the bytes stored are the bytes decoded
    if has_masks:
        _, truth = read_upright_pair(path, dataset.mask_path(sample_id), dataset.classes)
    else:  # no ground truth: every pixel void (unscored); agreement then counts every pixel
        truth = np.full((image.height, image.width), VOID, dtype=np.uint8)
    return _Held(sample_id, data, path.suffix.lower(), image, truth)


def build_reference(model, dataset: Dataset, split: Split, spec: PreprocessSpec, count: int, *,
                    classes: Sequence[str], palette: Sequence[Sequence[int]], upsample: str,
                    void: int = VOID, has_masks: bool = True) -> Reference:
    """The first ``count`` held-out ids: originals, full-size truth, and Keras' answers through the device pipeline.

    ``has_masks`` False (a dataset of images only): the truth is all void and the reference
    records ``has_truth=False``, so bench reports mIoU as not available and gates agreement only.
    """
    if count < 1:
        raise ConfigError(f"{EVAL_OPTION} must be at least 1, got {count}")
    split_name, ids = reference_split(split)
    if len(ids) < count:  # say so: a silent cut makes "--eval 100" in a log mean 6 images
        stderr.print(f"note: {EVAL_OPTION} {count}: the {split_name} split has {len(ids)} images; "
                     f"verifying on {len(ids)}", markup=False, highlight=False, soft_wrap=True)
    ids = ids[:count]
    held = [_read_held(dataset, i, has_masks) for i in track(ids, "loading reference images", total=len(ids))]
    resized = [resize_uint8(h.image, spec) for h in held]
    pixels = np.stack([r[0] for r in resized])
    placements: list[Placement] = [r[1] for r in resized]
    logits = keras_logits(model, pixels, spec)
    full = [full_size_mask(one, placement, h.image.size, upsample, len(classes), void)
            for one, placement, h in zip(logits, placements, held, strict=True)]
    return Reference(
        ids, pixels, np.stack([resize_mask(h.truth, spec) for h in held]).astype(np.uint8),
        logits.argmax(-1).astype(np.uint8), logits[:LOGITS_COUNT].copy(), split_name,
        originals=[h.data for h in held], suffixes=[h.suffix for h in held],
        truth_full=[h.truth for h in held], keras_full=full, classes=list(classes),
        palette=[list(map(int, rgb[:3])) for rgb in palette], upsample=upsample, has_truth=has_masks)
