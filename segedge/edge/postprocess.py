"""Logits -> class masks, palette PNGs, colour overlays and class fractions.

numpy + PIL only. The mask written to disk is what ``segedge.data.read_mask``
reads back (a VOC palette PNG of class indices, 255 = void), so predictions
can be scored against ground truth with the same reader the dataset uses.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segedge.contract.preprocess import Placement
from segedge.contract.upsample import full_size_mask, logits_to_mask
from segedge.data.images import palette_table
from segedge.util.fileio import atomic_path

VOID_NAME = "void"


def logits_to_masks(logits: np.ndarray, num_classes: int, void: int) -> np.ndarray:
    """(N, H, W, C) float logits -> (N, H, W) uint8 class indices.

    A model trained with void as an extra output (the seed preset: 22 outputs,
    index 21 = void) predicts indices at or past ``num_classes``; they become
    ``void`` (255), the value VOC masks use, rather than a bogus class id.
    """
    return logits_to_mask(logits, num_classes, void)


def image_masks(logits: np.ndarray, placements: Sequence[Placement], sizes: Sequence[tuple[int, int]],
                mode: str, num_classes: int, void: int,
                to_float: Callable[[np.ndarray], np.ndarray] | None = None) -> list[np.ndarray]:
    """One mask per image at its own (width, height): ``contract.upsample.full_size_mask`` (logits or mask mode).

    The same function the Keras reference set was built with at export, so the
    device's masks and the reference answer differ only by the model.
    ``to_float``: ``logits`` are an int8 model's codes (``Segmenter.mask_from``).
    """
    return [full_size_mask(one, placement, size, mode, num_classes, void, to_float)
            for one, placement, size in zip(logits, placements, sizes, strict=True)]


# zlib level for mask PNGs: levels 1-3 take zlib's fast path. Measured on a 500x375 mask: 0.37 ms and 5.3 KB at
# 3 against 0.88 ms and 3.8 KB at PIL's default 6 (17 ms at 9); on a 12 MP mask (benchmarks/bench_large_photo.py,
# levels 1/3/6/9): a trained-ish model's 151/130/68/60 KB in 25/24/54/200 ms, a noisy one's 1194/875/607/512 KB
# in 48/57/163/1638 ms. 3 is about as fast as 1 and smaller; 6 takes 2-3x as long. Lossless at every level.
MASK_PNG_LEVEL = 3


def save_mask(path: str | os.PathLike[str], mask: np.ndarray,
              palette: Sequence[Sequence[int]] | None = None) -> Path:
    """Write the mask PNG atomically: a half-written mask never appears under its name."""
    with atomic_path(path) as tmp:
        _palette_view(mask, palette).save(tmp, format="PNG", compress_level=MASK_PNG_LEVEL)
    return Path(path)


def _mask_view(mask: np.ndarray, mode: str = "L") -> Image.Image:
    """The uint8 mask as a PIL image of ``mode`` ("L" or "P") sharing its memory (no full-size copy)."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    return Image.frombuffer(mode, (mask.shape[1], mask.shape[0]), mask, "raw", mode, 0, 1)


def _palette_view(mask: np.ndarray, palette: Sequence[Sequence[int]] | None) -> Image.Image:
    """``mask_to_image``'s palette image without copying the mask."""
    image = _mask_view(mask, "P")
    image.putpalette(palette_table(palette).tobytes())
    return image


def save_image(path: str | os.PathLike[str], image: Image.Image, quality: int = 90) -> Path:
    """Write an overlay (JPEG or PNG, by suffix) atomically."""
    path = Path(path)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() copies even RGB
    with atomic_path(path) as tmp:
        rgb.save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path


def class_name(index: int, classes: Sequence[str]) -> str:
    return classes[index] if 0 <= index < len(classes) else VOID_NAME


def mask_counts(mask: np.ndarray) -> list[int]:
    """Pixels per index 0..255 of a uint8 mask, counted in C without a copy (bincount widens every pixel to
    int64: 8 bytes per pixel of a 12 MP photo)."""
    return _mask_view(mask).histogram()


def class_fractions(mask: np.ndarray, classes: Sequence[str], counts: Sequence[int] | None = None) -> dict[str, float]:
    """{class name: fraction of pixels} for the classes present, in class order (void last)."""
    counts = np.asarray(mask_counts(mask) if counts is None else counts)
    total = max(int(counts.sum()), 1)
    return {class_name(i, classes): round(int(counts[i]) / total, 6) for i in np.flatnonzero(counts)}


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's built-in font, scaled where this Pillow can (>= 10.1); no font files needed on a Pi.
    Cached: loading it costs more than drawing a legend, and a camera draws one per frame."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow 10.0: fixed-size bitmap font only
        return ImageFont.load_default()


_TINT_LUT = [0] + [255] * 255  # mask value -> composite weight: background 0, any class 255
OVERLAY_BAND_PIXELS = 1 << 18  # pixels per band of the tint: a 12 MP overlay holds ~1 MB per band image
MIN_LEGEND_FONT = 8  # px: below this the legend is unreadable; the image is shown without it


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.5, classes: Sequence[str] = (),
            palette: Sequence[Sequence[int]] | None = None, legend: bool = True,
            counts: Sequence[int] | None = None, in_place: bool = False) -> Image.Image:
    """The image with every non-background class tinted in its colour, plus a legend, at the image's size.

    Background is left untinted (its VOC colour is black, which would only
    darken the photo); the legend lists the other classes present, so a reader
    can tell a cat from a dog without the palette in their head. It takes at
    most a quarter of the picture, its font shrinking to fit; on an image too
    small even for the smallest font it is left out rather than widening the
    picture. The blend runs in PIL's C code (palette lookup, a paste through a
    weight mask), band by band, and only over each band's columns that hold a
    class: a camera showing every frame pays ~1 ms at 640x480, not the 7 ms of
    float math, and a 12 MP photo holds one copy of itself (the result), not four.

    ``counts``: the mask's pixel count per index (``mask_counts``), when the caller already has them.
    ``in_place``: tint ``image`` itself (an RGB image the caller no longer needs) instead of a copy,
    which at 12 MP is 36 MB and a full pass over the photo.
    """
    base = image if in_place and image.mode == "RGB" else image.convert("RGB")  # convert() copies
    mask = np.asarray(mask, dtype=np.uint8)
    if mask.shape != (base.height, base.width):
        raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]}, image {base.width}x{base.height}")
    # PIL's paste through an "L" mask is the blend: out + (colour - out) * weight / 255, in C, in place. The
    # weight is alpha where a class other than background is, 0 on background; an alpha outside 0-1 (an
    # extrapolating blend) goes through Image.blend. In bands: a band's colours, not the photo's again; a
    # band's columns without a class are left out (weight 0 there: the paste would not change them).
    weights = [0] + [int(round(alpha * 255))] * 255 if 0.0 <= alpha <= 1.0 else None
    step = max(1, OVERLAY_BAND_PIXELS // max(1, base.width))
    for top in range(0, base.height, step):
        bottom = min(base.height, top + step)
        tinted = np.flatnonzero(mask[top:bottom].any(axis=0))
        if not len(tinted):
            continue
        box = (int(tinted[0]), top, int(tinted[-1]) + 1, bottom)
        band = np.ascontiguousarray(mask[top:bottom, box[0] : box[2]])
        colours = _palette_view(band, palette).convert("RGB")
        if weights is not None:
            base.paste(colours, box[:2], _mask_view(band).point(weights))
        else:
            base.paste(Image.blend(base.crop(box), colours, alpha), box[:2], _mask_view(band).point(_TINT_LUT))
    result = base
    table = palette_table(palette)
    present = mask_counts(mask) if counts is None else counts
    entries = tuple((class_name(i, classes), (int(table[i][0]), int(table[i][1]), int(table[i][2])))
                    for i, count in enumerate(present) if count and i != 0)
    tile = _legend_tile(entries, result.width, result.height) if legend and entries else None
    if tile is not None:
        result.paste(tile, (0, 0), tile)
    return result


LegendEntries = tuple[tuple[str, tuple[int, int, int]], ...]


@functools.lru_cache(maxsize=64)
def _legend_tile(entries: LegendEntries, width: int, height: int) -> Image.Image | None:
    """The legend for an image of this size as an RGBA tile, or None when even the smallest font does not fit
    in a quarter of it. Cached: a camera's frames keep their size and mostly their classes, and drawing text
    costs more than the whole blend."""
    for font_size in range(max(10, min(height, width) // 24), MIN_LEGEND_FONT - 1, -1):
        box = _legend_size(entries, font_size)
        if box[0] <= width and box[0] * box[1] <= width * height // 4:
            tile = Image.new("RGBA", box, (0, 0, 0, 160))
            _draw_legend(tile, entries, font_size)
            return tile
    return None


def _legend_metrics(size: int) -> tuple[int, int]:
    pad = max(2, size // 4)
    return pad, size + pad


def _legend_size(entries: LegendEntries, size: int) -> tuple[int, int]:
    font = _font(size)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad, line = _legend_metrics(size)
    width = max(scratch.textlength(name, font=font) for name, _ in entries)
    return int(pad * 3 + size + width) + 1, pad * 2 + line * len(entries)


def _draw_legend(tile: Image.Image, entries: LegendEntries, size: int) -> None:
    """Colour swatch + class name per entry on the tile's dark, half-transparent box (in place)."""
    font = _font(size)
    draw = ImageDraw.Draw(tile)
    pad, line = _legend_metrics(size)
    for row, (name, colour) in enumerate(entries):
        top = pad + row * line
        draw.rectangle((pad, top, pad + size, top + size), fill=(*colour, 255), outline=(255, 255, 255, 255))
        draw.text((pad * 2 + size, top), name, fill=(255, 255, 255, 255), font=font)
