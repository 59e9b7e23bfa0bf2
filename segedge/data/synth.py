"""A generated dataset in the exact VOC layout: VOC's hard parts, learnable in a few CPU epochs.

VOC cannot be downloaded on every machine (CI, this one), so the demo and the
tests use this instead. It keeps what makes VOC hard for an edge pipeline, so
that a bug in decoding, resizing (stretch vs letterbox), upsampling or int8
shows in mIoU: VOC's image sizes (long side ``size``, mostly 4:3 and 3:2
landscape, a quarter portrait, some odd shapes), all 20 object classes (a
silhouette plus a colour texture each, see ``synth_shapes``), several objects
per image that occlude each other and run off the frame, thin parts (bicycle
frames, legs, masts), background clutter, and VOC's void (255) band drawn
along every object outline. Same seed and arguments give the same bytes.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from segedge.contract.classes import CLASSES_FILE, ClassSpec
from segedge.contract.labels import VOC_CLASSES, VOID
from segedge.data.images import mask_to_image
from segedge.data.pairs import IMAGES_DIR, MASKS_DIR
from segedge.data.synth_shapes import CLASS_STYLES, CLASSES, Placement, render_parts, texture
from segedge.data.voc import IMAGE_DIR, MASK_DIR, SPLIT_DIR
from segedge.util import fileio, outputs
from segedge.util.errors import ConfigError
from segedge.util.progress import track

# (short / long side, weight): VOC 2012's commonest aspect ratios, then a tail of odd ones (None: uniform).
ASPECTS: tuple[tuple[float | None, float], ...] = ((0.75, 0.55), (2 / 3, 0.25), (0.5625, 0.05), (0.8, 0.05),
                                                    (None, 0.10))
PORTRAIT, SQUARE = 0.25, 0.04  # shares of portrait and square images; the rest are landscape
FULL_LONG_SIDE = 0.9  # share of images whose long side is exactly ``size`` (VOC: most are 500 px)
DIFFICULT = 0.03  # share of objects labelled void as a whole (VOC marks ambiguous ones so)
VOID_PER_PX = 1 / 100  # void band width per pixel of long side: 5 px at 500 px as in VOC, 1 px at 96


@dataclass(frozen=True)
class SynthConfig:
    images: int = 200
    size: int = 96  # long side in pixels
    seed: int = 0
    val_fraction: float = 0.4
    max_shapes: int = 4  # objects per image: 1 to this many (fewer are likelier)
    classes: tuple[int, ...] = CLASSES  # object classes drawn (VOC ids 1-20); tests' few-step models use a few
    num_classes: int = len(VOC_CLASSES)  # --classes: background + N-1 object classes (styles of VOC ids 1..N-1)
    layout: str = "voc"  # --layout: voc (JPEGImages/...) or pairs (images/ + masks/)

    @property
    def drawn(self) -> tuple[int, ...]:
        """The object classes drawn: ``classes`` for VOC's 21, else 1..N-1 (each keeps VOC id i's look)."""
        if self.num_classes == len(VOC_CLASSES):
            return tuple(self.classes)
        return tuple(range(1, self.num_classes))

    def class_spec(self) -> ClassSpec:
        return ClassSpec.default(self.num_classes)

    def check(self) -> None:
        if self.images < 3:
            raise ConfigError(f"--images must be at least 3, got {self.images}")
        if self.size < 32:
            raise ConfigError(f"--size must be at least 32 pixels, got {self.size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val fraction must be in (0, 1), got {self.val_fraction}")
        if self.max_shapes < 1:
            raise ConfigError(f"max_shapes must be at least 1, got {self.max_shapes}")
        if not self.classes or len(set(self.classes)) != len(self.classes) or not set(self.classes) <= set(CLASSES):
            raise ConfigError(f"classes must be distinct VOC object ids 1-20, got {self.classes!r}")
        if isinstance(self.num_classes, bool) or not 2 <= self.num_classes <= len(VOC_CLASSES):
            raise ConfigError(f"--classes must be 2 to {len(VOC_CLASSES)} (background and up to "
                              f"{len(CLASSES)} drawn object kinds), got {self.num_classes}")
        if self.layout not in ("voc", "pairs"):
            raise ConfigError(f"--layout must be voc or pairs, got {self.layout!r}")


def image_size(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """(width, height) with the long side ``size`` (sometimes less) and a VOC-like aspect ratio."""
    long_side = size if rng.random() < FULL_LONG_SIDE else int(round(size * rng.uniform(0.7, 0.99)))
    shape = rng.random()
    if shape < SQUARE:
        return long_side, long_side
    weights = np.array([w for _, w in ASPECTS])
    ratio = ASPECTS[int(rng.choice(len(ASPECTS), p=weights / weights.sum()))][0]
    if ratio is None:
        ratio = float(rng.uniform(0.5, 0.95))
    short_side = max(16, int(round(long_side * ratio)))
    return (short_side, long_side) if shape < SQUARE + PORTRAIT else (long_side, short_side)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Muted low-frequency colour, grain and a few grey clutter blobs: texture that is no class."""
    coarse = rng.uniform(60, 170, size=(4, 4, 3))
    coarse = 0.35 * coarse + 0.65 * coarse.mean(axis=2, keepdims=True)  # muted: the classes own the vivid colours
    smooth = Image.fromarray(coarse.astype(np.uint8), "RGB").resize((width, height), Image.BICUBIC)
    clutter = ImageDraw.Draw(smooth)
    long_side = max(width, height)
    for _ in range(int(rng.integers(0, 4))):
        grey = int(rng.uniform(50, 180))
        tint = tuple(int(np.clip(grey + rng.normal(0, 12), 0, 255)) for _ in range(3))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx, ry = rng.uniform(0.05, 0.25) * long_side, rng.uniform(0.05, 0.25) * long_side
        if rng.random() < 0.5:
            clutter.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=tint)
        else:
            clutter.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=tint)
    grain = rng.normal(0, 10, size=(height, width, 3))
    return np.asarray(smooth, dtype=np.float64) * 0.9 + grain


def _place(rng: np.random.Generator, cls: int, width: int, height: int, radius: float) -> Placement:
    stretch, upright = CLASS_STYLES[cls][4], CLASS_STYLES[cls][5]
    spread = math.radians(12 if upright else 35)
    # Centres may sit near the frame: VOC objects are often cut by the image border.
    cx = float(rng.uniform(0.1, 0.9) * width)
    cy = float(rng.uniform(0.15, 0.9) * height)
    return Placement(cx, cy, radius, stretch * float(rng.uniform(0.8, 1.25)), bool(rng.random() < 0.5),
                     float(rng.uniform(-spread, spread)))


def _paint(rng: np.random.Generator, pixels: np.ndarray, labels: np.ndarray, cls: int, where: Placement,
           thinnest: int) -> None:
    """Draw one object over ``pixels`` (float RGB) and ``labels`` (class ids): it occludes what lies below.

    Thin parts are at least ``thinnest`` pixels wide, so the void band leaves some of them labelled.
    """
    height, width = labels.shape
    shape, colour_a, colour_b, pattern, _, _ = CLASS_STYLES[cls]
    silhouette = Image.new("L", (width, height), 0)
    render_parts(ImageDraw.Draw(silhouette), shape, where, 255, thinnest)
    box = silhouette.getbbox()
    if box is None:
        return
    x0, y0, x1, y1 = box
    inside = np.asarray(silhouette, dtype=np.uint8)[y0:y1, x0:x1] > 0
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    u, v = where.to_object(xs, ys)
    weight = texture(pattern, u, v, period=float(rng.uniform(0.3, 0.42)))[..., None]
    jitter = rng.normal(0, 10, size=3)
    colours = [np.clip(np.asarray(c, dtype=np.float64) + jitter, 0, 255) for c in (colour_a, colour_b)]
    colour = colours[0] * (1 - weight) + colours[1] * weight
    tilt = rng.normal(0, 0.06, size=2)  # light from one side: a brightness ramp across the object
    light = (float(rng.uniform(0.85, 1.12)) + tilt[0] * u + tilt[1] * v)[..., None]
    region = pixels[y0:y1, x0:x1]
    region[inside] = (colour * light)[inside]
    label = VOID if rng.random() < DIFFICULT else cls
    labels[y0:y1, x0:x1][inside] = label


def _void_band(labels: np.ndarray, width: int) -> np.ndarray:
    """VOC's void outline: 255 on a ``width``-pixel band across every change of label.

    A pixel turns void when its (width+1)-square window sees two labels, so the
    band straddles object/background and object/object outlines alike and no
    two different labels are ever closer than ``width + 1`` pixels. The image
    border is not an outline (edge padding).
    """
    before = width // 2
    after = width - before
    padded = np.pad(labels, ((before, after), (before, after)), mode="edge")
    windows = (width + 1, width + 1)
    view = np.lib.stride_tricks.sliding_window_view(padded, windows)
    high, low = view.max(axis=(2, 3)), view.min(axis=(2, 3))
    return np.where(high != low, np.uint8(VOID), labels)


class ClassDeck:
    """Deals the classes in shuffled rounds, so each gets the same share of objects.

    Independent draws leave some class with half the average count in a
    240-image demo set; a deck keeps every class learnable and present.
    """

    def __init__(self, rng: np.random.Generator, classes: tuple[int, ...] = CLASSES) -> None:
        self._rng = rng
        self._classes = np.asarray(classes)
        self._pending: list[int] = []

    def deal(self) -> int:
        if not self._pending:
            self._pending = [int(c) for c in self._rng.permutation(self._classes)]
        return self._pending.pop()


def make_sample(rng: np.random.Generator, size: int, max_shapes: int,
                deck: ClassDeck | None = None) -> tuple[Image.Image, Image.Image]:
    """One (RGB photo, palette mask) pair; ``size`` is the long side in pixels.

    ``deck`` spreads classes evenly over a whole dataset (``generate`` passes one); without it,
    this image's classes come from a fresh shuffle.
    """
    deck = deck if deck is not None else ClassDeck(rng)
    width, height = image_size(rng, size)
    pixels = _background(rng, width, height)
    labels = np.zeros((height, width), dtype=np.uint8)
    count = 1 + int(min(rng.geometric(0.45) - 1, max_shapes - 1))  # 1 object in 45 % of images, 2 in 25 %, ...
    long_side = max(width, height)
    band = max(1, int(round(long_side * VOID_PER_PX)))
    radii = sorted((float(rng.uniform(0.22, 0.45) if count == 1 else rng.uniform(0.15, 0.35)) * long_side
                    for _ in range(count)), reverse=True)  # large first: small ones in front, as in photos
    for radius in radii:
        cls = deck.deal()
        _paint(rng, pixels, labels, cls, _place(rng, cls, width, height, radius), band + 2)
    labels = _void_band(labels, band)
    photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    photo = photo.filter(ImageFilter.GaussianBlur(0.6 * long_side / 250))  # a lens, not hard polygon edges
    return photo, mask_to_image(labels)


def generate(out: str | os.PathLike[str], config: SynthConfig, overwrite: bool = False) -> Path:
    """Write a dataset to ``out`` (created whole, atomically, marked) and return it.

    VOC layout (the default, byte for byte what it always wrote) or pairs layout (``images/``, ``masks/``, no
    split files: the reader splits by ratio). ``classes.json`` is written when the classes are not VOC's 21
    or the layout is pairs. ``out`` must be new, an empty folder, or (with ``overwrite``) a dataset segedge generated:
    ``segedge.util.outputs.claim`` refuses anything else, so no user file is ever replaced.
    """
    config.check()
    target = outputs.claim(out, "dataset", overwrite)
    rng = np.random.default_rng(config.seed)
    deck = ClassDeck(rng, config.drawn)
    spec = config.class_spec()
    pairs = config.layout == "pairs"
    image_dir, mask_dir = (IMAGES_DIR, MASKS_DIR) if pairs else (IMAGE_DIR, MASK_DIR)
    ids = [f"synth_{i:06d}" for i in range(config.images)]
    with outputs.build(target) as root:
        for sub in (image_dir, mask_dir, *(() if pairs else (str(SPLIT_DIR),))):
            (root / sub).mkdir(parents=True)
        for sample_id in track(ids, "Generating images", total=len(ids)):
            image, mask = make_sample(rng, config.size, config.max_shapes, deck)
            jpeg = io.BytesIO()
            image.save(jpeg, format="JPEG", quality=92)
            (root / image_dir / f"{sample_id}.jpg").write_bytes(jpeg.getvalue())
            mask.save(root / mask_dir / f"{sample_id}.png", format="PNG")
        if pairs or not spec.is_voc:
            fileio.write_json(root / CLASSES_FILE, spec.to_dict())
        if not pairs:
            n_val = max(1, int(round(config.images * config.val_fraction)))
            splits = {"train": ids[:-n_val], "val": ids[-n_val:], "trainval": ids}
            for name, members in splits.items():
                (root / SPLIT_DIR / f"{name}.txt").write_text("\n".join(members) + "\n", encoding="utf-8")
    return Path(out)
