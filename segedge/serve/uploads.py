"""An uploaded image's bytes -> the upright 8-bit RGB picture ``segedge predict`` would have read.

A server cannot trust its uploads: a few bytes of PNG can claim 100 000 x 100 000 pixels (a
decompression bomb), a phone sends EXIF-rotated JPEGs, scanners send CMYK and 16-bit files. The
size limits are checked from the header, before any pixel is decoded; the decode itself is
``segedge.data.images.read_upright``, the one reader predict and the reference set use, so EXIF
orientation, CMYK, 16-bit, palette and alpha are treated exactly as the proof treated them. Every
refusal is an ``UploadError`` with an HTTP status and one line saying what to send instead.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from segedge.data.images import read_upright
from segedge.util.errors import DataError

DEFAULT_MAX_BYTES = 20_000_000  # 20 MB: a 48 MP phone JPEG fits; a video does not
DEFAULT_MAX_PIXELS = 24_000_000  # 24 MP: a 12 MP photo peaks near 220 MB in predict (docs/design.md)


class UploadError(Exception):
    """A refused upload: ``status`` is the HTTP status, ``message`` one line for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


def check_length(declared: str | None, limits: Limits) -> None:
    """Refuse a Content-Length over the byte limit before reading a byte of the body."""
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise UploadError(400, f"Content-Length {declared!r} is not a number") from None
    if size > limits.max_bytes:
        raise UploadError(413, too_many_bytes(size, limits))


def too_many_bytes(size: int | None, limits: Limits) -> str:
    said = f"{size / 1e6:.1f} MB" if size is not None else "more"
    return (f"upload is {said}; the limit is {limits.max_bytes / 1e6:g} MB (serve --max-upload-mb): "
            "send a smaller JPEG")


def decode(data: bytes, limits: Limits) -> Image.Image:
    """The upload as predict reads a file: size checked from the header, then ``read_upright``."""
    if not data:
        raise UploadError(400, "empty upload: send the image's bytes as the body, or as the multipart field 'image'")
    if len(data) > limits.max_bytes:
        raise UploadError(413, too_many_bytes(len(data), limits))
    try:
        with warnings.catch_warnings():  # PIL's own bomb warning: our limit below is the one that applies
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise UploadError(413, f"image is implausibly large ({exc}); the limit is {limits.max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadError(415, "not an image this server can read: send a JPEG, PNG, BMP, GIF, TIFF or WebP file"
                          ) from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise UploadError(413, f"image is {width}x{height} ({width * height / 1e6:.1f} MP); the limit is "
                               f"{limits.max_pixels / 1e6:g} MP (serve --max-megapixels): send a smaller image")
    if width == 0 or height == 0:
        raise UploadError(400, f"image is {width}x{height}: it has no pixels")
    try:
        return read_upright(image)
    except DataError as exc:
        raise UploadError(400, "the image could not be decoded (truncated or damaged file): "
                               f"{one_line(exc.message)}; re-send the whole file") from None
    except (OSError, SyntaxError, ValueError) as exc:  # a decoder error past load(): same answer
        raise UploadError(400, f"the image could not be decoded ({one_line(str(exc))}); re-send the whole file"
                          ) from None


def one_line(text: str) -> str:
    return " ".join(text.split())
