"""One upload through the served model: decode, prepare, infer, mask, encode, each stage timed.

The stages are ``Segmenter.prepare`` / ``infer_raw`` / ``mask_from``, the steps ``Segmenter.predict``
composes (so an upload's mask is the mask ``segedge predict`` writes for the same file), and the
PNG is written as predict writes masks: a palette PNG of class indices, 255 = void, zlib level 3.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from segedge.data.images import palette_table
from segedge.edge.postprocess import MASK_PNG_LEVEL, class_name
from segedge.edge.predictor import Segmenter
from segedge.serve.uploads import Limits, decode

FORMATS = ("json", "png", "overlay")
INCLUDES = ("mask", "overlay")
MEDIA = {"json": "application/json", "png": "image/png", "overlay": "image/jpeg"}


@dataclass
class Segmented:
    image: Image.Image  # upright RGB, as the model saw it
    mask: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def run(segmenter: Segmenter, data: bytes, limits: Limits) -> Segmented:
    """The upload's bytes -> its mask at the upright image's size (``UploadError`` for a bad upload)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    image = decode(data, limits)
    timings["decode"] = (now := time.perf_counter()) - start
    pixels, placement, size = segmenter.prepare(image)
    timings["prepare"] = (then := time.perf_counter()) - now
    raw = segmenter.infer_raw(pixels)
    timings["inference"] = (now := time.perf_counter()) - then
    mask = segmenter.mask_from(raw, placement, size)
    timings["mask"] = time.perf_counter() - now
    return Segmented(image, mask, timings)


def mask_png(mask: np.ndarray, palette: list[list[int]]) -> bytes:
    """The mask as ``segedge predict`` saves it (palette PNG, indices as pixel values)."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    picture = Image.frombuffer("P", (mask.shape[1], mask.shape[0]), mask, "raw", "P", 0, 1)
    picture.putpalette(palette_table(palette).tobytes())
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=MASK_PNG_LEVEL)
    return buffer.getvalue()


def overlay_jpeg(segmenter: Segmenter, result: Segmented, alpha: float = 0.5) -> bytes:
    buffer = io.BytesIO()
    segmenter.overlay(result.image, result.mask, alpha).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def class_table(mask: np.ndarray, classes: list[str]) -> list[dict]:
    """The classes present: index, name, pixel count and share of the image, in class order (void last)."""
    counts = np.bincount(mask.ravel(), minlength=256)
    total = max(int(mask.size), 1)
    return [{"index": int(i), "name": class_name(int(i), classes), "pixels": int(counts[i]),
             "share": round(int(counts[i]) / total, 6)} for i in np.flatnonzero(counts)]


def encode(segmenter: Segmenter, result: Segmented, fmt: str, include: tuple[str, ...] = (),
           alpha: float = 0.5) -> tuple[bytes | dict, str]:
    """(body, media type): the mask PNG, the overlay JPEG, or the JSON summary (with the pictures base64
    encoded when ``include`` names them). The encode stage's time is added to ``result.timings``."""
    start = time.perf_counter()
    manifest = segmenter.manifest
    body: bytes | dict
    if fmt == "png":
        body = mask_png(result.mask, manifest.palette)
    elif fmt == "overlay":
        body = overlay_jpeg(segmenter, result, alpha)
    else:
        body = {"width": int(result.mask.shape[1]), "height": int(result.mask.shape[0]),
                "model": segmenter.describe(), "artifact": segmenter.artifact, "upsample": segmenter.upsample,
                "classes": class_table(result.mask, manifest.classes)}
        if "mask" in include:
            body["mask_png_base64"] = base64.b64encode(mask_png(result.mask, manifest.palette)).decode()
        if "overlay" in include:
            body["overlay_jpeg_base64"] = base64.b64encode(overlay_jpeg(segmenter, result, alpha)).decode()
    result.timings["encode"] = time.perf_counter() - start
    if isinstance(body, dict):
        body["timings_ms"] = {stage: round(1000 * seconds, 3) for stage, seconds in result.timings.items()}
        body["timings_ms"]["total"] = round(1000 * sum(result.timings.values()), 3)
    return body, MEDIA[fmt]


def choose_format(query: str | None, accept: str | None) -> str | None:
    """``?format=`` wins; else the Accept header (image/png -> mask, image/jpeg -> overlay); else JSON.
    None: an unknown ``?format``."""
    if query is not None:
        return query if query in FORMATS else None
    accept = (accept or "").lower()
    if "image/png" in accept and "application/json" not in accept:
        return "png"
    if "image/jpeg" in accept and "application/json" not in accept:
        return "overlay"
    return "json"
