"""A generated dataset in the exact VOC layout, learnable in a few CPU epochs.

VOC cannot be downloaded on every machine (CI, this one), so the demo and the
tests use this instead: textured backgrounds with coloured shapes, one VOC
class per shape kind (each with its own hue), void (255) borders around every
object as VOC annotates them. Same seed and arguments give the same bytes.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from segedge import outputs
from segedge.data.images import mask_to_image
from segedge.data.voc import IMAGE_DIR, MASK_DIR, SPLIT_DIR
from segedge.errors import ConfigError
from segedge.labels import VOID
from segedge.progress import track

# class index -> (shape kind, base RGB colour)
SHAPE_CLASSES: dict[int, tuple[str, tuple[int, int, int]]] = {
    1: ("triangle", (220, 40, 40)),     # aeroplane
    8: ("circle", (240, 160, 30)),      # cat
    12: ("square", (40, 90, 230)),      # dog
    15: ("diamond", (40, 200, 70)),     # person
    20: ("cross", (170, 60, 200)),      # tvmonitor
}
VOID_BORDER = 2


@dataclass(frozen=True)
class SynthConfig:
    images: int = 200
    size: int = 96
    seed: int = 0
    val_fraction: float = 0.4
    max_shapes: int = 3

    def check(self) -> None:
        if self.images < 3:
            raise ConfigError(f"--images must be at least 3, got {self.images}")
        if self.size < 32:
            raise ConfigError(f"--size must be at least 32 pixels, got {self.size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val fraction must be in (0, 1), got {self.val_fraction}")


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Low-frequency colour noise plus grain: texture that is not any class."""
    coarse = rng.uniform(60, 190, size=(4, 4, 3)).astype(np.uint8)
    smooth = Image.fromarray(coarse, "RGB").resize((width, height), Image.BICUBIC)
    grain = rng.normal(0, 12, size=(height, width, 3))
    pixels = np.clip(np.asarray(smooth, dtype=np.float64) * 0.8 + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB").filter(ImageFilter.SMOOTH)


def _outline(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    if kind == "triangle":
        return [(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)]
    if kind == "square":
        return [(cx - r * 0.8, cy - r * 0.8), (cx + r * 0.8, cy - r * 0.8),
                (cx + r * 0.8, cy + r * 0.8), (cx - r * 0.8, cy + r * 0.8)]
    if kind == "diamond":
        return [(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)]
    if kind == "cross":
        a, b = r, r * 0.35
        return [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b),
                (cx + a, cy + b), (cx + b, cy + b), (cx + b, cy + a), (cx - b, cy + a),
                (cx - b, cy + b), (cx - a, cy + b), (cx - a, cy - b), (cx - b, cy - b)]
    return None  # circle


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, **style) -> None:
    points = _outline(kind, cx, cy, r)
    if points is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], **style)
    else:
        draw.polygon(points, **style)


def make_sample(rng: np.random.Generator, size: int, max_shapes: int) -> tuple[Image.Image, Image.Image]:
    width = size
    height = int(round(size * rng.uniform(0.75, 1.0)))
    image = _background(rng, width, height)
    mask = Image.new("L", (width, height), 0)
    paint, label = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    classes = sorted(SHAPE_CLASSES)
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        cls = int(classes[rng.integers(len(classes))])
        kind, base = SHAPE_CLASSES[cls]
        colour = tuple(int(np.clip(c + rng.normal(0, 18), 0, 255)) for c in base)
        r = float(rng.uniform(0.12, 0.28) * size)
        cx, cy = float(rng.uniform(r, width - r)), float(rng.uniform(r, height - r))
        _draw_shape(paint, kind, cx, cy, r, fill=colour)
        _draw_shape(label, kind, cx, cy, r, fill=cls, outline=VOID, width=VOID_BORDER)
    return image, mask_to_image(np.asarray(mask))


def generate(out: str | os.PathLike[str], config: SynthConfig, overwrite: bool = False) -> Path:
    """Write a VOC-layout dataset to ``out`` (created whole, atomically, marked) and return it.

    ``out`` must be new, an empty folder, or (with ``overwrite``) a dataset segedge generated:
    ``segedge.outputs.claim`` refuses anything else, so no user file is ever replaced.
    """
    config.check()
    target = outputs.claim(out, "dataset", overwrite)
    rng = np.random.default_rng(config.seed)
    ids = [f"synth_{i:06d}" for i in range(config.images)]
    with outputs.build(target) as root:
        for sub in (IMAGE_DIR, MASK_DIR, str(SPLIT_DIR)):
            (root / sub).mkdir(parents=True)
        for sample_id in track(ids, "Generating images", total=len(ids)):
            image, mask = make_sample(rng, config.size, config.max_shapes)
            jpeg = io.BytesIO()
            image.save(jpeg, format="JPEG", quality=92)
            (root / IMAGE_DIR / f"{sample_id}.jpg").write_bytes(jpeg.getvalue())
            mask.save(root / MASK_DIR / f"{sample_id}.png", format="PNG")
        n_val = max(1, int(round(config.images * config.val_fraction)))
        splits = {"train": ids[:-n_val], "val": ids[-n_val:], "trainval": ids}
        for name, members in splits.items():
            (root / SPLIT_DIR / f"{name}.txt").write_text("\n".join(members) + "\n", encoding="utf-8")
    return Path(out)
