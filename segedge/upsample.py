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
  installed, else PIL); ``MaskCost`` picks the cheaper way per image.
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


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source taps (i0, i1) and the weight of i1 per output index, as PIL's bilinear filter places them
    when enlarging: pixel centres aligned (half-pixel), edges clamped."""
    position = np.clip((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    first = np.floor(position).astype(np.intp)
    return first, np.minimum(first + 1, n_in - 1), position - first


def mixed_blocks(winner: np.ndarray) -> np.ndarray:
    """(h, w) bool: the 2x2 tap block whose top-left tap is (i, j) holds more than one argmax class
    (taps past the last row/column clamp to it, as ``_taps`` places them)."""
    mixed = np.zeros(winner.shape, dtype=bool)
    np.not_equal(winner[:, :-1], winner[:, 1:], out=mixed[:, :-1])
    mixed[:-1] |= winner[:-1] != winner[1:]
    mixed[:-1, :-1] |= winner[:-1, :-1] != winner[1:, 1:]
    return mixed


def upsampled_argmax(crop: np.ndarray, size: tuple[int, int],
                     dense_if: Callable[[int, int], bool] | None = None,
                     to_float: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray | None:
    """argmax over classes of the bilinearly enlarged (h, w, C) ``crop`` at ``size`` = (width, height).

    Equal to ``argmax(resize_logits(...))`` wherever the float rounding of the
    two ways does not decide a near-tie, without enlarging C planes. Work is
    per 2x2 block of source taps (each output pixel mixes one block):

    - all four taps have argmax k: a convex mix keeps k on top (ties go to
      the lower index in both), so every pixel of the block is k;
    - else only classes whose largest tap reaches the best smallest tap can
      win anywhere in the block (any other is below that class everywhere);
      those few logits are mixed per pixel as PIL mixes them, and the
      lowest index wins a tie, as argmax.

    Enlarging only (``size`` at least the crop's both ways): shrinking
    filters over more than two taps. None when ``dense_if(mixed blocks,
    pixels in them)`` says enlarging every plane is cheaper (boundaries
    everywhere; see ``block_is_slower``).

    ``to_float``: ``crop`` holds integer codes (an int8 model's output) and
    this maps any part of them to float logits (dequantizing). A positive
    scale keeps the order of the codes, ties included, so the argmax runs on
    the codes and only the mixed blocks' taps are dequantized: the same
    floats, element by element, as dequantizing everything first.
    """
    crop = np.asarray(crop) if to_float is not None else np.asarray(crop, dtype=np.float32)
    height, width = crop.shape[:2]
    y0, _, fy = _taps(height, size[1])
    x0, _, fx = _taps(width, size[0])
    rows_of = np.bincount(y0, minlength=height)  # output rows whose top tap is source row i (consecutive)
    cols_of = np.bincount(x0, minlength=width)
    first_row, first_col = np.cumsum(rows_of) - rows_of, np.cumsum(cols_of) - cols_of
    winner = np.argmax(crop, axis=-1).astype(np.uint8 if crop.shape[-1] <= 256 else np.intp)
    out = np.repeat(np.repeat(winner, rows_of, axis=0), cols_of, axis=1)  # each block's pixels: its top-left class
    mixed = mixed_blocks(winner) & (rows_of > 0)[:, None] & (cols_of > 0)[None, :]  # a block no pixel uses: skip
    if not mixed.any():
        return out
    block_y, block_x = np.nonzero(mixed)
    if dense_if is not None and dense_if(len(block_y), int((rows_of[block_y] * cols_of[block_x]).sum())):
        return None
    # the mixed blocks' four taps (tap i + 1 clamps to the last row/column): four (blocks, C) rows, gathered
    # from the flattened crop (one index per row is cheaper than two), combined element-wise (a reduction
    # over an axis of 4 or C costs numpy a loop per block)
    below, right = np.minimum(block_y + 1, height - 1), np.minimum(block_x + 1, width - 1)
    flat = crop.reshape(height * width, crop.shape[-1])
    taps = [np.take(flat, y * width + x, axis=0) for y, x in
            ((block_y, block_x), (block_y, right), (below, block_x), (below, right))]
    if to_float is not None:
        taps = [to_float(tap) for tap in taps]
    lowest = np.minimum(np.minimum(taps[0], taps[1]), np.minimum(taps[2], taps[3]))
    highest = np.maximum(np.maximum(taps[0], taps[1]), np.maximum(taps[2], taps[3]))
    candidates = highest >= lowest.max(axis=-1, keepdims=True)
    count = candidates.sum(axis=-1)
    for width_n in np.unique(count):  # one vectorised pass per candidate count: n classes mixed, not C
        chosen = np.flatnonzero(count == width_n)
        classes_n = np.nonzero(candidates[chosen])[1].reshape(-1, width_n)  # row-major: ascending per block
        taps_n = np.stack([tap[chosen[:, None], classes_n] for tap in taps], axis=1)  # (blocks_n, 4, n)
        by, bx = block_y[chosen], block_x[chosen]
        heights, widths = rows_of[by], cols_of[bx]
        # across each block's output columns once (shared by all its rows), then down per pixel
        column_owner = np.repeat(np.arange(len(widths)), widths)
        column_start = np.cumsum(widths) - widths
        column = np.arange(int(widths.sum())) - column_start[column_owner]
        wx = fx[first_col[bx][column_owner] + column][:, None]
        column_taps = taps_n[column_owner]  # (columns, 4, n)
        top = (column_taps[:, 0] * (1.0 - wx) + column_taps[:, 1] * wx).astype(np.float32)
        bottom = (column_taps[:, 2] * (1.0 - wx) + column_taps[:, 3] * wx).astype(np.float32)
        sizes = heights * widths
        owner = np.repeat(np.arange(len(sizes)), sizes)  # each output pixel of these blocks -> its block
        local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        row, col = np.divmod(local, widths[owner])
        ys = first_row[by][owner] + row
        xs = first_col[bx][owner] + col
        at = column_start[owner] + col
        wy = fy[ys][:, None]
        mixed_values = (top[at] * (1.0 - wy) + bottom[at] * wy).astype(np.float32)
        out[ys, xs] = classes_n[owner, np.argmax(mixed_values, axis=1)]
    return out


@dataclass(frozen=True)
class MaskCost:
    """Milliseconds of the two ways to the full-size mask, as fitted to 48 photos timed both ways (two bundles, 96 and
    224 px, 21 classes; photos 300x225 to 1024x768; this 2-core EPYC) in docs/design.md: the block path pays per
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
        height, width = crop.shape[:2]
        return np.argmax(resize_logits(crop, Placement(0, 0, width, height), size), axis=0)
    planes = cv2.resize(np.ascontiguousarray(crop, dtype=np.float32), size, interpolation=cv2.INTER_LINEAR)
    return np.argmax(planes, axis=-1) if planes.ndim == 3 else np.zeros(planes.shape, np.intp)


def full_size_mask(logits: np.ndarray, placement: Placement, size: tuple[int, int], mode: str,
                   num_classes: int, void: int,
                   to_float: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(H, W, C) model-size logits -> (height, width) uint8 mask for an image of ``size`` = (width, height).

    ``to_float``: ``logits`` are an int8 model's codes and this dequantizes any part of them. The mask
    is the one the dequantized logits give; only what needs floats is dequantized (the mixed blocks'
    taps, or every plane when those are enlarged or shrunk), since the argmax keeps the codes' order.
    """
    floats = (lambda values: values) if to_float is None else to_float
    if mode == Upsample.logits.value:
        crop = np.asarray(logits)[placement.top : placement.top + placement.height,
                                  placement.left : placement.left + placement.width]
        if size[0] >= crop.shape[1] and size[1] >= crop.shape[0]:
            classes, opencv = crop.shape[-1], _opencv() is not None
            model_pixels, out_pixels = crop.shape[0] * crop.shape[1], size[0] * size[1]
            index = upsampled_argmax(crop, size, dense_if=functools.partial(
                MASK_COST.block_is_slower, model_pixels, classes, out_pixels, opencv), to_float=to_float)
            if index is None:
                index = dense_argmax(floats(crop), size)
            return class_indices(index, num_classes, void)
        return class_indices(np.argmax(resize_logits(floats(np.asarray(logits)), placement, size), axis=0),
                             num_classes, void)
    if mode == Upsample.mask.value:
        return restore_mask(logits_to_mask(logits, num_classes, void), placement, size)
    raise ConfigError(f"unknown upsample mode {mode!r}; choose logits or mask")
