"""Model-size logits -> a class mask at the image's own size: the one post-processing step.

Shared (numpy + PIL, no runtime) because the device (``segedge.edge``), bench
and the Keras reference written at export must turn logits into masks the same
way, or the reference set would not be the device's answer. Two modes:

- ``logits``: each class's logit plane is resized bilinearly (PIL, mode "F") to
  the image size, then argmax: smooth class boundaries on a 500x375 photo.
- ``mask``: argmax at model size, then the class mask is enlarged with nearest
  neighbour: cheaper, blocky at a large upscale.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from PIL import Image

from segedge.errors import ConfigError
from segedge.preprocess import Placement, restore_mask


class Upsample(str, Enum):
    logits = "logits"
    mask = "mask"


DEFAULT_UPSAMPLE = Upsample.logits.value  # measured in /work/notes/proof-docs.md: better mIoU at original size
LEGACY_UPSAMPLE = Upsample.mask.value  # what a manifest without a postprocess section was exported for


def check_upsample(value: str, option: str = "--upsample") -> str:
    """The mode name, or a one-line ConfigError naming the option and the choices."""
    if value not in {m.value for m in Upsample}:
        raise ConfigError(f"{option} must be logits or mask, got {value!r}")
    return value


def class_indices(index: np.ndarray, num_classes: int, void: int) -> np.ndarray:
    """argmax indices -> uint8 mask; indices past the classes (the seed preset's void output) become ``void``."""
    return np.where(index >= num_classes, void, index).astype(np.uint8)


def logits_to_mask(logits: np.ndarray, num_classes: int, void: int) -> np.ndarray:
    """(..., H, W, C) logits -> (..., H, W) uint8 class indices at the same size."""
    return class_indices(np.argmax(logits, axis=-1), num_classes, void)


def resize_logits(logits: np.ndarray, placement: Placement, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) logits -> (C, h, w) float32 at ``size`` = (width, height): the content crop, bilinear per class."""
    crop = np.asarray(logits, dtype=np.float32)[placement.top : placement.top + placement.height,
                                                placement.left : placement.left + placement.width]
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(crop[..., c]), "F").resize(size, Image.BILINEAR),
                         dtype=np.float32) for c in range(crop.shape[-1])]
    return np.stack(planes)


def full_size_mask(logits: np.ndarray, placement: Placement, size: tuple[int, int], mode: str,
                   num_classes: int, void: int) -> np.ndarray:
    """(H, W, C) model-size logits -> (height, width) uint8 mask for an image of ``size`` = (width, height)."""
    if mode == Upsample.logits.value:
        return class_indices(np.argmax(resize_logits(logits, placement, size), axis=0), num_classes, void)
    if mode == Upsample.mask.value:
        return restore_mask(logits_to_mask(logits, num_classes, void), placement, size)
    raise ConfigError(f"unknown upsample mode {mode!r}; choose logits or mask")
