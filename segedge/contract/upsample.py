"""Model-size logits -> a class mask at the image's own size: the one post-processing step.

Shared (numpy + PIL, no runtime) because the device (``segedge.edge``), bench
and the Keras reference written at export must turn logits into masks the same
way, or the reference set would not be the device's answer. Two modes:

- ``logits``: each class's logit plane is resized bilinearly (PIL, mode "F") to
  the image size, then argmax: smooth class boundaries on a 500x375 photo.
  When the image is at least as large as the content crop (the usual case),
  ``full_size_mask`` gets the same mask without resizing every plane: a
  bilinear value is a convex mix of its 2x2 source taps, so where the four
  taps share one argmax class the result is that class, exactly; only pixels
  whose taps disagree (class boundaries, a few % of a photo) are interpolated.
  Where boundaries are many (a noisy model, a small photo) enlarging every
  plane at once is cheaper (OpenCV's resize when the camera extra is
  installed, else PIL plane by plane); ``MaskCost`` picks the cheaper way
  per image, but only while the float planes that way holds at once fit in
  ``DENSE_MAX_BYTES`` (OpenCV: all C, up to a 640x480 photo's; past that
  PIL's two, up to 4 MP): past that the block way runs whatever the cost,
  because it works in bands of output rows (``BAND_PIXELS``) and a 12 MP
  photo then costs its uint8 mask plus one band, never 21 full-size float
  planes.
- ``mask``: argmax at model size, then the class mask is enlarged with nearest
  neighbour: cheaper, blocky at a large upscale.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from PIL import Image

from segedge.contract.preprocess import Placement, restore_mask
from segedge.contract.upsample_blocks import _taps, mixed_blocks, upsampled_argmax  # noqa: F401 (re-exported)
from segedge.util.errors import ConfigError


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


@dataclass(frozen=True)
class MaskCost:
    """Milliseconds of the two ways to the full-size mask, as fitted to 48 photos timed both ways (two bundles, 96 and
    224 px, 21 classes; photos 300x225 to 1024x768; this 2-core EPYC) in docs/performance.md: the block path pays per
    model pixel (argmax), per mixed block (its taps, all classes) and per pixel in one; enlarging every plane
    pays per output pixel and class (PIL per plane ~3.5x OpenCV's all-planes resize). Only the ratio of the two
    matters, so one machine's constants choose well on another."""

    block_fixed: float = 0.33
    block_per_model_pixel: float = 1.9e-5
    block_per_block_class: float = 3.2e-4 / 21
    block_per_mixed_pixel: float = 5.1e-5
    dense_per_pixel_class: float = 1.7e-5 / 21
    pil_factor: float = 3.5

    def block_is_slower(self, model_pixels: int, classes: int, out_pixels: int, opencv: bool,
                        blocks: int, pixels: int) -> bool:
        block = (self.block_fixed + self.block_per_model_pixel * model_pixels
                 + self.block_per_block_class * classes * blocks + self.block_per_mixed_pixel * pixels)
        dense = self.dense_per_pixel_class * classes * out_pixels * (1.0 if opencv else self.pil_factor)
        return block > dense


MASK_COST = MaskCost()


@functools.cache
def _opencv() -> Any:
    """OpenCV when installed (the camera extra), else None: its resize of all planes at once is the fastest."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def dense_argmax(crop: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """argmax of every class plane enlarged bilinearly: OpenCV's resize on the (h, w, C) stack when importable
    (the same half-pixel bilinear; equal to PIL's argmax on >= 99.999 % of pixels, float rounding apart),
    else PIL per plane."""
    cv2 = _opencv()
    if cv2 is None or crop.shape[-1] > 512:  # OpenCV's channel limit
        return _running_argmax(np.asarray(crop, dtype=np.float32), size)
    planes = cv2.resize(np.ascontiguousarray(crop, dtype=np.float32), size, interpolation=cv2.INTER_LINEAR)
    return np.argmax(planes, axis=-1) if planes.ndim == 3 else np.zeros(planes.shape, np.intp)


# enlarging every plane only while the float planes it holds at once fit here: OpenCV's resize holds all C
# (640x480 x 21 classes fit), PIL's way two (the best so far and the next: up to 4 MP)
DENSE_MAX_BYTES = 32 << 20


def _running_argmax(crop: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``argmax(resize_logits(...))`` holding two planes, not C: each PIL-enlarged plane replaces the best so
    far where it is above it (a later class only above: the first of equal values, as argmax)."""
    best = index = None
    for c in range(crop.shape[-1]):
        plane = np.asarray(Image.fromarray(np.ascontiguousarray(crop[..., c]), "F").resize(size, Image.BILINEAR),
                           dtype=np.float32)
        if best is None:
            best, index = plane.copy(), np.zeros(plane.shape, np.uint8 if crop.shape[-1] <= 256 else np.intp)
            continue
        above = plane > best
        np.copyto(best, plane, where=above)
        index[above] = c
    return index


def full_size_mask(logits: np.ndarray, placement: Placement, size: tuple[int, int], mode: str,
                   num_classes: int, void: int,
                   to_float: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(H, W, C) model-size logits -> (height, width) uint8 mask for an image of ``size`` = (width, height).

    ``to_float``: ``logits`` are an int8 model's codes and this dequantizes any part of them. The mask
    is the one the dequantized logits give; only what needs floats is dequantized (the mixed blocks'
    taps, or every plane when those are enlarged or shrunk), since the argmax keeps the codes' order.

    Memory: enlarging, the mask is made in bands (``upsampled_argmax``), and the planes are enlarged
    only while the ones held at once fit in ``DENSE_MAX_BYTES``: OpenCV's all-planes resize (a 640x480
    photo's), else PIL's plane by plane (two held: up to 4 MP), else (a 12 MP photo) the block way is
    taken whatever ``MaskCost`` says, so a photo costs its uint8 mask plus a bounded band.
    """
    floats = (lambda values: values) if to_float is None else to_float
    if mode == Upsample.logits.value:
        crop = np.asarray(logits)[placement.top : placement.top + placement.height,
                                  placement.left : placement.left + placement.width]
        if size[0] >= crop.shape[1] and size[1] >= crop.shape[0]:
            classes, opencv = crop.shape[-1], _opencv() is not None
            model_pixels, out_pixels = crop.shape[0] * crop.shape[1], size[0] * size[1]
            # the dense way whose float planes held at once fit: OpenCV's all C, else PIL's two, else none
            plane = out_pixels * 4
            opencv = opencv and plane * classes <= DENSE_MAX_BYTES
            dense_if = None
            if opencv or plane * 2 <= DENSE_MAX_BYTES:
                dense_if = functools.partial(MASK_COST.block_is_slower, model_pixels, classes, out_pixels, opencv)
            index = upsampled_argmax(crop, size, dense_if=dense_if, to_float=to_float)
            if index is None:
                values = floats(crop)
                index = dense_argmax(values, size) if opencv else _running_argmax(np.asarray(values, np.float32), size)
            elif index.dtype == np.uint8 and (not index.size or int(index.max()) < num_classes):
                return index  # no void output predicted: already the mask, no full-size copy
            return class_indices(index, num_classes, void)
        return class_indices(np.argmax(resize_logits(floats(np.asarray(logits)), placement, size), axis=0),
                             num_classes, void)
    if mode == Upsample.mask.value:
        return restore_mask(logits_to_mask(logits, num_classes, void), placement, size)
    raise ConfigError(f"unknown upsample mode {mode!r}; choose logits or mask")
