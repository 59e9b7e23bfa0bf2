"""Reading images and masks from disk into the forms the rest of segedge uses.

Real folders hold RGBA PNGs, grayscale, CMYK and 16-bit files: these are
converted to 8-bit RGB rather than rejected. What cannot be decoded raises a
``DataError`` that names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from segedge.errors import DataError
from segedge.labels import NUM_CLASSES, PALETTE, VOID, flat_palette

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes)")
    try:
        image = Image.open(path)
        image.load()
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image is implausibly large ({exc}); refusing to decode it") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc}); re-copy or delete it") from exc
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; 16-bit is rescaled, alpha is dropped as ``convert("RGB")`` drops it.

    Dropping (not compositing onto black) keeps the colours under a
    half-transparent pixel: a PNG cut-out with alpha 128 is still the photo.
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1e-12)
        array = ((array - array.min()) / span * 255.0 + 0.5).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    return image.convert("RGB")


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """An image file as 8-bit RGB, pixels as stored (no EXIF orientation: dataset masks are drawn on those)."""
    return to_rgb(_open(Path(path)))


def read_upright(source: str | os.PathLike[str] | Image.Image) -> Image.Image:
    """A file or PIL image as a viewer shows it, in 8-bit RGB: what ``predict`` segments.

    The one "decode + EXIF orientation + mode to RGB" step that ``segedge
    predict`` and ``Segmenter.predict`` share, so a phone photo taken upright
    gets an upright mask of the upright size from either. Orientation is
    applied before the mode conversion, which would drop the EXIF block for
    some modes. A PIL image passed in is not modified.
    """
    if isinstance(source, Image.Image):
        image = source
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{getattr(image, 'filename', '') or 'PIL image'}: not a readable image ({exc})") from exc
    else:
        image = _open(Path(source))
    return to_rgb(ImageOps.exif_transpose(image))


_COLOUR_TO_INDEX = {colour: index for index, colour in enumerate(PALETTE[:NUM_CLASSES])}
_COLOUR_TO_INDEX[PALETTE[VOID]] = VOID


def _rgb_mask_to_indices(path: Path, rgb: np.ndarray) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    lookup = {(r << 16) | (g << 8) | b: idx for (r, g, b), idx in _COLOUR_TO_INDEX.items()}
    colours, inverse = np.unique(packed, return_inverse=True)
    unknown = [int(c) for c in colours if int(c) not in lookup]
    if unknown:
        first = unknown[0]
        raise DataError(
            f"{path}: RGB mask has colour {(first >> 16, (first >> 8) & 255, first & 255)} "
            "that is not in the VOC palette; save masks as palette ('P' mode) PNGs of class indices"
        )
    indices = np.array([lookup[int(c)] for c in colours], dtype=np.uint8)
    return indices[inverse].reshape(packed.shape)


def read_mask(path: str | os.PathLike[str], num_classes: int = NUM_CLASSES) -> np.ndarray:
    """A class-index mask (HxW uint8, 255 = void) from a palette, grayscale or VOC-coloured PNG."""
    path = Path(path)
    image = _open(path)
    if image.mode in ("P", "L"):
        mask = np.asarray(image, dtype=np.uint8)
    elif image.mode in ("RGB", "RGBA"):
        mask = _rgb_mask_to_indices(path, np.asarray(image.convert("RGB"), dtype=np.uint8))
    else:
        raise DataError(f"{path}: mask has image mode {image.mode}; expected a palette ('P') PNG")
    bad = (mask >= num_classes) & (mask != VOID)
    if bad.any():
        values = sorted({int(v) for v in np.unique(mask[bad])})[:5]
        raise DataError(
            f"{path}: mask has label values {values} outside 0..{num_classes - 1} and {VOID} (void)"
        )
    return mask


def mask_to_image(mask: np.ndarray) -> Image.Image:
    """A class-index mask as a VOC palette PNG image (the format VOC itself uses)."""
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(flat_palette())
    return image


def colorize(mask: np.ndarray) -> np.ndarray:
    """HxW class indices to HxWx3 uint8 VOC colours."""
    table = np.asarray(PALETTE, dtype=np.uint8)
    return table[np.asarray(mask, dtype=np.uint8)]


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
