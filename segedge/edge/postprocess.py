"""Logits -> class masks, palette PNGs, colour overlays and class fractions.

numpy + PIL only. The mask written to disk is what ``segedge.data.read_mask``
reads back (a VOC palette PNG of class indices, 255 = void), so predictions
can be scored against ground truth with the same reader the dataset uses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segedge.data.images import mask_to_image
from segedge.fileio import atomic_path
from segedge.labels import PALETTE
from segedge.preprocess import Placement
from segedge.upsample import full_size_mask, logits_to_mask

VOID_NAME = "void"


def logits_to_masks(logits: np.ndarray, num_classes: int, void: int) -> np.ndarray:
    """(N, H, W, C) float logits -> (N, H, W) uint8 class indices.

    A model trained with void as an extra output (the seed preset: 22 outputs,
    index 21 = void) predicts indices at or past ``num_classes``; they become
    ``void`` (255), the value VOC masks use, rather than a bogus class id.
    """
    return logits_to_mask(logits, num_classes, void)


def image_masks(logits: np.ndarray, placements: Sequence[Placement], sizes: Sequence[tuple[int, int]],
                mode: str, num_classes: int, void: int) -> list[np.ndarray]:
    """One mask per image at its own (width, height): ``segedge.upsample.full_size_mask`` (logits or mask mode).

    The same function the Keras reference set was built with at export, so the
    device's masks and the reference answer differ only by the model.
    """
    return [full_size_mask(one, placement, size, mode, num_classes, void)
            for one, placement, size in zip(logits, placements, sizes, strict=True)]


def palette_table(palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """(256, 3) uint8 colours: the manifest's class colours over the VOC palette."""
    table = np.asarray(PALETTE, dtype=np.uint8).copy()
    for index, colour in enumerate(palette or ()):
        table[index] = np.asarray(colour[:3], dtype=np.uint8)
    return table


def mask_image(mask: np.ndarray, palette: Sequence[Sequence[int]] | None = None) -> Image.Image:
    """A class-index mask as a palette ('P') image, coloured with the bundle's palette."""
    image = mask_to_image(mask)
    if palette:
        image.putpalette(palette_table(palette).ravel().tolist())
    return image


def save_mask(path: str | os.PathLike[str], mask: np.ndarray,
              palette: Sequence[Sequence[int]] | None = None) -> Path:
    """Write the mask PNG atomically: a half-written mask never appears under its name."""
    with atomic_path(path) as tmp:
        mask_image(mask, palette).save(tmp, format="PNG")
    return Path(path)


def save_image(path: str | os.PathLike[str], image: Image.Image, quality: int = 90) -> Path:
    """Write an overlay (JPEG or PNG, by suffix) atomically."""
    path = Path(path)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    with atomic_path(path) as tmp:
        image.convert("RGB").save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path


def class_name(index: int, classes: Sequence[str]) -> str:
    return classes[index] if 0 <= index < len(classes) else VOID_NAME


def class_fractions(mask: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """{class name: fraction of pixels} for the classes present, in class order (void last)."""
    counts = np.bincount(np.asarray(mask, dtype=np.uint8).ravel(), minlength=256)
    total = max(int(counts.sum()), 1)
    return {class_name(i, classes): round(int(counts[i]) / total, 6) for i in np.flatnonzero(counts)}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's built-in font, scaled where this Pillow can (>= 10.1); no font files needed on a Pi."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow 10.0: fixed-size bitmap font only
        return ImageFont.load_default()


def overlay(image: Image.Image, mask: np.ndarray, alpha: float = 0.5, classes: Sequence[str] = (),
            palette: Sequence[Sequence[int]] | None = None, legend: bool = True) -> Image.Image:
    """The image with every non-background class tinted in its colour, plus a legend.

    Background is left untinted (its VOC colour is black, which would only
    darken the photo); the legend lists the other classes present, so a reader
    can tell a cat from a dog without the palette in their head. On a small
    image the legend would hide the picture, so it goes in a panel beside it.
    """
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    mask = np.asarray(mask, dtype=np.uint8)
    if mask.shape != base.shape[:2]:
        raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]}, image {base.shape[1]}x{base.shape[0]}")
    table = palette_table(palette)
    tint = (mask != 0)[..., None]
    blended = np.where(tint, base * (1.0 - alpha) + table[mask].astype(np.float32) * alpha, base)
    result = Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8), "RGB")
    entries = [(class_name(int(i), classes), tuple(int(c) for c in table[i])) for i in np.unique(mask) if i != 0]
    if not legend or not entries:
        return result
    font_size = max(10, min(result.height, result.width) // 24)
    box = _legend_size(entries, font_size)
    if box[0] * box[1] <= result.width * result.height // 4:
        _draw_legend(result, entries, font_size, (0, 0))
        return result
    canvas = Image.new("RGB", (result.width + box[0], max(result.height, box[1])), (0, 0, 0))
    canvas.paste(result, (0, 0))
    _draw_legend(canvas, entries, font_size, (result.width, 0))
    return canvas


def _legend_metrics(size: int) -> tuple[int, int]:
    pad = max(2, size // 4)
    return pad, size + pad


def _legend_size(entries: Sequence[tuple[str, tuple[int, ...]]], size: int) -> tuple[int, int]:
    font = _font(size)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad, line = _legend_metrics(size)
    width = max(scratch.textlength(name, font=font) for name, _ in entries)
    return int(pad * 3 + size + width) + 1, pad * 2 + line * len(entries)


def _draw_legend(image: Image.Image, entries: Sequence[tuple[str, tuple[int, ...]]], size: int,
                 origin: tuple[int, int]) -> None:
    """Colour swatch + class name per entry on a dark box at ``origin`` (in place)."""
    font = _font(size)
    draw = ImageDraw.Draw(image, "RGBA")
    pad, line = _legend_metrics(size)
    box_w, box_h = _legend_size(entries, size)
    x0, y0 = origin
    draw.rectangle((x0, y0, x0 + box_w - 1, y0 + box_h - 1), fill=(0, 0, 0, 160))
    for row, (name, colour) in enumerate(entries):
        top = y0 + pad + row * line
        draw.rectangle((x0 + pad, top, x0 + pad + size, top + size), fill=(*colour[:3], 255),
                       outline=(255, 255, 255, 255))
        draw.text((x0 + pad * 2 + size, top), name, fill=(255, 255, 255, 255), font=font)
