"""Reading images and masks from disk into the forms the rest of segedge uses.

Real folders hold RGBA PNGs, grayscale, CMYK and 16-bit files: these are
converted to 8-bit RGB rather than rejected. What cannot be decoded raises a
``DataError`` that names the file.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from segedge.contract.classes import ClassSpec
from segedge.contract.labels import PALETTE, VOID
from segedge.util.errors import DataError

EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the PIL transpose that shows the image upright (as ImageOps.exif_transpose uses)
_ORIENT_METHODS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
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


SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_SIXTEEN_BIT_DIVISOR = 257.0  # 65535 / 255: a 16-bit level v is the 8-bit level v / 257


def bit_depth(image: Image.Image) -> int:
    """Bits per sample of a single-channel integer image ("I;16*" or "I"), from the file where it says.

    PIL calls a 16-bit PNG "I;16" (Pillow >= 10) or "I" (older Pillow), and a
    32-bit TIFF "I": the values alone cannot tell a dark 16-bit photo (max
    200) from 8-bit data, so the file's own bit depth decides where known.
    """
    if image.mode in SIXTEEN_BIT_MODES:
        return 16
    if image.format == "PNG":  # PNG has no 32-bit samples: an "I" PNG is 16-bit grayscale
        return 16
    tags = getattr(image, "tag_v2", None)
    if tags is not None and tags.get(258):  # TIFF BitsPerSample
        bits = tags.get(258)
        return int(bits[0] if isinstance(bits, tuple) else bits)
    top = int(np.asarray(image).max()) if image.width and image.height else 0
    return 8 if top <= 255 else 16 if top <= 65535 else 32


def _integer_to_l(image: Image.Image) -> Image.Image:
    """A 16- or 32-bit grayscale image as 8-bit "L", scaled by its real bit depth (16-bit: v / 257)."""
    bits = bit_depth(image)
    array = np.asarray(image, dtype=np.float64)
    if bits > 8:
        array = array / ((2.0 ** bits - 1.0) / 255.0)
    return Image.fromarray(np.clip(np.floor(array + 0.5), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; 16-bit is rescaled by its bit depth, alpha is dropped as ``convert("RGB")`` drops it.

    Dropping (not compositing onto black) keeps the colours under a
    half-transparent pixel: a PNG cut-out with alpha 128 is still the photo.
    Palette images (with or without a transparent index) become their
    palette colours.
    """
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        return _integer_to_l(image).convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1e-12)
        array = ((array - array.min()) / span * 255.0 + 0.5).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode in ("P", "PA"):
        return image.convert("RGBA").convert("RGB")  # palette colours; a transparency index is alpha, dropped
    return image.convert("RGB")


def read_image(path: str | os.PathLike[str]) -> Image.Image:
    """An image file as 8-bit RGB, pixels as stored (no EXIF orientation); everything else calls ``read_upright``."""
    return to_rgb(_open(Path(path)))


def orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1..8; 1 = as stored) of a decoded image."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block: show the pixels as stored, as viewers do
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def orient(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; the input is not modified.

    An image already upright is returned as it is: ``exif_transpose`` would copy it, which at
    12 MP is 36 MB and ~10 ms for nothing. Nothing downstream writes into the image it reads.
    """
    if orientation(image) == 1:
        return image
    return ImageOps.exif_transpose(image)


def _decode(source: str | os.PathLike[str] | Image.Image) -> Image.Image:
    if isinstance(source, Image.Image):
        try:
            source.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{getattr(source, 'filename', '') or 'PIL image'}: not a readable image ({exc})") from exc
        return source
    return _open(Path(source))


def read_upright(source: str | os.PathLike[str] | Image.Image) -> Image.Image:
    """A file or PIL image as a viewer shows it, in 8-bit RGB: the ONE image reader.

    Decode + EXIF orientation + mode to RGB (16-bit by its bit depth, alpha
    dropped, palette expanded), shared by training, calibration, the
    reference set, ``segedge predict``, ``Segmenter.predict`` and bench, so
    a phone photo taken upright is seen upright by every stage. Orientation
    is applied before the mode conversion, which would drop the EXIF block
    for some modes. A PIL image passed in is not modified.
    """
    return to_rgb(orient(_decode(source)))


def transpose_like(mask: np.ndarray, tag: int) -> np.ndarray:
    """Apply EXIF orientation ``tag`` to a mask drawn on the stored pixels (what ``orient`` does to the image)."""
    method = _ORIENT_METHODS.get(tag)
    if method is None:
        return mask
    return np.asarray(Image.fromarray(np.asarray(mask, dtype=np.uint8), "L").transpose(method), dtype=np.uint8)


def read_upright_pair(image_path: str | os.PathLike[str], mask_path: str | os.PathLike[str],
                      classes: ClassSpec | None = None, *, strict: bool = True) -> tuple[Image.Image, np.ndarray]:
    """A dataset pair, both upright: the image via ``read_upright``, its mask turned the same way.

    A mask is drawn on the image's stored pixels (VOC's JPEGs carry no EXIF
    orientation, so for VOC nothing turns), so the image's EXIF turn is
    applied to the mask too and the pair stays aligned. A non-square mask
    that already has the upright size (drawn in a viewer that applied the
    tag) is taken as upright. Any other size mismatch is a ``DataError``.
    ``strict=False`` returns the stored label values unchecked (``read_label_values``), for ``data check``.
    """
    raw = _decode(image_path)
    tag = orientation(raw)
    image = to_rgb(orient(raw))
    mask = read_mask(mask_path, classes) if strict else read_label_values(mask_path, classes)
    stored = (raw.height, raw.width)
    upright = (image.height, image.width)
    if mask.shape == stored:
        mask = transpose_like(mask, tag)
    elif mask.shape != upright:
        raise DataError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                        f"{Path(image_path).name} is {image.width}x{image.height}")
    return image, mask


def _rgb_mask_to_indices(path: Path, rgb: np.ndarray, classes: ClassSpec) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    lookup = {(r << 16) | (g << 8) | b: idx for (r, g, b), idx in classes.colour_to_index().items()}
    colours, inverse = np.unique(packed, return_inverse=True)
    unknown = [int(c) for c in colours if int(c) not in lookup]
    if unknown:
        first = unknown[0]
        whose = "the VOC palette" if classes.is_voc else "the dataset's palette (classes.json)"
        raise DataError(
            f"{path}: RGB mask has colour {(first >> 16, (first >> 8) & 255, first & 255)} "
            f"that is not in {whose}; save masks as palette ('P') or grayscale ('L') PNGs of class indices"
        )
    indices = np.array([lookup[int(c)] for c in colours], dtype=np.uint8)
    return indices[inverse].reshape(packed.shape)


def read_label_values(path: str | os.PathLike[str], classes: ClassSpec | None = None) -> np.ndarray:
    """A mask's label values as stored (HxW uint8), unchecked: ``data check`` counts the illegal ones.

    Palette ('P') and grayscale ('L') PNGs hold the indices themselves; an RGB
    mask is mapped colour -> index through the dataset's palette.
    """
    path = Path(path)
    classes = classes or ClassSpec.voc()
    image = _open(path)
    if image.mode in ("P", "L"):
        return np.asarray(image, dtype=np.uint8)
    if image.mode in ("RGB", "RGBA"):
        return _rgb_mask_to_indices(path, np.asarray(image.convert("RGB"), dtype=np.uint8), classes)
    raise DataError(f"{path}: mask has image mode {image.mode}; expected a palette ('P') or grayscale ('L') PNG")


def outside_classes(values: np.ndarray, classes: ClassSpec) -> np.ndarray:
    """Where a stored mask holds a value that is neither a declared class nor the declared void."""
    return (values >= classes.num_classes) & (values != classes.void)


def to_canonical_void(values: np.ndarray, classes: ClassSpec) -> np.ndarray:
    """The declared void value as 255, the one void value segedge uses in memory and in predicted masks."""
    if classes.void == VOID:
        return values
    return np.where(values == classes.void, np.uint8(VOID), values).astype(np.uint8)


def read_mask(path: str | os.PathLike[str], classes: ClassSpec | None = None) -> np.ndarray:
    """A class-index mask (HxW uint8, 255 = void) from a palette, grayscale or palette-coloured RGB PNG.

    ``classes`` (default VOC's 21) says which values are legal; any other value is a ``DataError``.
    """
    classes = classes or ClassSpec.voc()
    mask = read_label_values(path, classes)
    bad = outside_classes(mask, classes)
    if bad.any():
        values = sorted({int(v) for v in np.unique(mask[bad])})[:5]
        raise DataError(
            f"{path}: mask has label values {values} outside the {classes.num_classes} classes "
            f"0..{classes.num_classes - 1} and {classes.void} (void); fix the mask or the dataset's classes.json"
        )
    return to_canonical_void(mask, classes)


def palette_table(palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """(256, 3) uint8 colours: ``palette`` (one RGB per class, extra values ignored) over VOC's.

    Read-only and cached per palette: a camera colours every frame with the same bundle's colours.
    """
    return _palette_table(tuple((int(rgb[0]), int(rgb[1]), int(rgb[2])) for rgb in palette or ()))


@functools.lru_cache(maxsize=64)
def _palette_table(colours: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    table = np.asarray(PALETTE, dtype=np.uint8).copy()
    for index, rgb in enumerate(colours):
        table[index] = rgb
    table.setflags(write=False)
    return table


def mask_to_image(mask: np.ndarray, palette: Sequence[Sequence[int]] | None = None) -> Image.Image:
    """A class-index mask as a palette PNG image (the format VOC itself uses).

    ``palette`` (one RGB per class; default VOC's) colours the first indices, VOC's colours the rest (255 = void).
    """
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    image.putpalette(palette_table(palette).tobytes())
    return image


def colorize(mask: np.ndarray, palette: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """HxW class indices to HxWx3 uint8 colours: ``palette`` (one RGB per class) over VOC's."""
    return palette_table(palette)[np.asarray(mask, dtype=np.uint8)]


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
