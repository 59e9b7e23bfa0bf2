"""The 20 object classes of the generated dataset: a shape family and a texture each.

A small CNN must be able to tell the classes apart at 96 px after a few CPU
epochs, yet the data must not be trivially separable by one colour: so each
class is a (silhouette, two colours, texture pattern) triple where classes that
share a colour family differ in texture or silhouette (cow: white with black
spots; sheep: off-white rings; aeroplane: white with blue stripes). Several
classes carry thin parts (bicycle frame, chair and table legs, boat mast, horse
legs), VOC's hard case for segmentation and for int8.

Shapes are written in an object frame (x right, y down, about [-1, 1]) as parts
that ``render_parts`` turns into pixels after scaling, stretching, flipping and
rotating. Pure numpy + PIL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

Point = tuple[float, float]
# ("poly", points) | ("ellipse", (cx, cy, rx, ry)) | ("line", points, width) | ("ring", (cx, cy, r), width);
# widths are in object units (fractions of the object's radius).
Part = tuple


def _rect(x0: float, y0: float, x1: float, y1: float) -> Part:
    return ("poly", [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def _mirror(points: list[Point]) -> list[Point]:
    return [(-x, y) for x, y in points]


SHAPES: dict[str, list[Part]] = {
    "aeroplane": [
        ("ellipse", (0.0, 0.0, 1.0, 0.17)),
        ("poly", [(0.25, -0.08), (-0.15, -0.08), (-0.45, -0.95), (-0.25, -0.95)]),
        ("poly", [(0.25, 0.08), (-0.15, 0.08), (-0.45, 0.95), (-0.25, 0.95)]),
        ("poly", [(-0.7, 0.0), (-0.95, 0.0), (-1.0, -0.45), (-0.88, -0.45)]),
    ],
    "bicycle": [
        ("ring", (-0.58, 0.35, 0.4), 0.09),
        ("ring", (0.58, 0.35, 0.4), 0.09),
        ("line", [(-0.58, 0.35), (-0.1, -0.3), (0.45, -0.3), (0.58, 0.35)], 0.08),
        ("line", [(-0.1, -0.3), (0.02, 0.35), (-0.58, 0.35)], 0.08),
        ("line", [(0.02, 0.35), (0.45, -0.3)], 0.08),
        ("line", [(-0.2, -0.5), (0.02, -0.5)], 0.1),
        ("line", [(0.45, -0.3), (0.4, -0.6), (0.6, -0.62)], 0.08),
    ],
    "bird": [
        ("ellipse", (0.0, 0.1, 0.6, 0.34)),
        ("ellipse", (0.55, -0.25, 0.26, 0.23)),
        ("poly", [(0.76, -0.32), (1.0, -0.2), (0.76, -0.14)]),
        ("poly", [(-0.45, 0.0), (-1.0, -0.3), (-0.95, 0.35)]),
        ("poly", [(-0.2, 0.0), (0.3, -0.05), (-0.35, -0.75)]),
    ],
    "boat": [
        ("poly", [(-1.0, 0.35), (1.0, 0.35), (0.7, 0.75), (-0.7, 0.75)]),
        ("line", [(0.0, 0.36), (0.0, -1.0)], 0.07),
        ("poly", [(0.07, -0.9), (0.07, 0.25), (0.75, 0.25)]),
    ],
    "bottle": [
        _rect(-0.32, -0.2, 0.32, 1.0),
        ("poly", [(-0.32, -0.2), (-0.12, -0.55), (0.12, -0.55), (0.32, -0.2)]),
        _rect(-0.12, -1.0, 0.12, -0.5),
    ],
    "bus": [
        ("poly", [(-1.0, -0.45), (0.9, -0.6), (1.0, -0.45), (1.0, 0.45), (-1.0, 0.45)]),
        ("ellipse", (-0.6, 0.48, 0.17, 0.17)),
        ("ellipse", (0.6, 0.48, 0.17, 0.17)),
    ],
    "car": [
        ("poly", [(-1.0, -0.05), (1.0, 0.0), (1.0, 0.42), (-1.0, 0.42)]),
        ("poly", [(-0.6, 0.0), (-0.35, -0.45), (0.35, -0.45), (0.62, 0.0)]),
        ("ellipse", (-0.6, 0.45, 0.22, 0.22)),
        ("ellipse", (0.6, 0.45, 0.22, 0.22)),
    ],
    "cat": [
        ("ellipse", (0.0, 0.15, 0.78, 0.65)),
        ("poly", [(-0.72, -0.1), (-0.6, -1.0), (-0.12, -0.42)]),
        ("poly", _mirror([(-0.72, -0.1), (-0.6, -1.0), (-0.12, -0.42)])),
    ],
    "chair": [
        _rect(-0.6, 0.0, 0.62, 0.16),
        _rect(0.46, -1.0, 0.62, 0.0),
        ("line", [(-0.54, 0.16), (-0.58, 1.0)], 0.09),
        ("line", [(0.56, 0.16), (0.6, 1.0)], 0.09),
        ("line", [(-0.2, 0.16), (-0.22, 0.85)], 0.07),
    ],
    "cow": [
        ("ellipse", (-0.05, 0.0, 0.78, 0.42)),
        ("ellipse", (0.82, -0.28, 0.24, 0.2)),
        ("line", [(-0.6, 0.25), (-0.62, 0.95)], 0.14),
        ("line", [(-0.35, 0.3), (-0.33, 0.95)], 0.14),
        ("line", [(0.35, 0.3), (0.35, 0.95)], 0.14),
        ("line", [(0.58, 0.25), (0.6, 0.95)], 0.14),
    ],
    "diningtable": [
        _rect(-1.0, -0.38, 1.0, -0.16),
        ("line", [(-0.85, -0.16), (-0.85, 0.8)], 0.09),
        ("line", [(0.85, -0.16), (0.85, 0.8)], 0.09),
        ("line", [(-0.5, -0.16), (-0.45, 0.65)], 0.07),
        ("line", [(0.5, -0.16), (0.45, 0.65)], 0.07),
    ],
    "dog": [
        ("ellipse", (-0.1, 0.05, 0.68, 0.33)),
        ("ellipse", (0.65, -0.38, 0.3, 0.25)),
        ("poly", [(0.45, -0.55), (0.6, -0.95), (0.72, -0.5)]),
        ("line", [(-0.6, 0.2), (-0.65, 0.9)], 0.15),
        ("line", [(0.4, 0.2), (0.42, 0.9)], 0.15),
        ("line", [(-0.75, -0.05), (-1.0, -0.45)], 0.1),
    ],
    "horse": [
        ("ellipse", (-0.1, -0.05, 0.65, 0.28)),
        ("poly", [(0.35, -0.2), (0.6, -0.8), (0.82, -0.75), (0.55, -0.05)]),
        ("ellipse", (0.82, -0.75, 0.2, 0.13)),
        ("line", [(-0.6, 0.1), (-0.65, 1.0)], 0.09),
        ("line", [(-0.4, 0.15), (-0.38, 1.0)], 0.09),
        ("line", [(0.25, 0.15), (0.28, 1.0)], 0.09),
        ("line", [(0.42, 0.1), (0.5, 1.0)], 0.09),
        ("line", [(-0.72, -0.1), (-0.95, 0.5)], 0.1),
    ],
    "motorbike": [
        ("ellipse", (-0.62, 0.45, 0.34, 0.34)),
        ("ellipse", (0.62, 0.45, 0.34, 0.34)),
        ("poly", [(-0.45, 0.25), (0.5, 0.25), (0.35, -0.2), (-0.35, -0.2)]),
        ("line", [(0.35, -0.2), (0.55, -0.55), (0.8, -0.55)], 0.09),
    ],
    "person": [
        ("ellipse", (0.0, -0.78, 0.2, 0.22)),
        ("poly", [(-0.3, -0.55), (0.3, -0.55), (0.25, 0.12), (-0.25, 0.12)]),
        ("line", [(-0.13, 0.1), (-0.22, 1.0)], 0.16),
        ("line", [(0.13, 0.1), (0.22, 1.0)], 0.16),
        ("line", [(-0.28, -0.5), (-0.5, 0.05)], 0.11),
        ("line", [(0.28, -0.5), (0.52, 0.0)], 0.11),
    ],
    "pottedplant": [
        ("poly", [(-0.38, 0.35), (0.38, 0.35), (0.27, 1.0), (-0.27, 1.0)]),
        ("poly", [(0.0, -1.0), (0.15, -0.35), (0.7, -0.75), (0.3, -0.1), (0.85, 0.1), (0.2, 0.15),
                  (0.0, 0.4), (-0.2, 0.15), (-0.85, 0.1), (-0.3, -0.1), (-0.7, -0.75), (-0.15, -0.35)]),
    ],
    "sheep": [
        ("ellipse", (-0.45, -0.1, 0.42, 0.38)),
        ("ellipse", (0.05, -0.2, 0.45, 0.4)),
        ("ellipse", (0.4, 0.05, 0.38, 0.36)),
        ("ellipse", (-0.2, 0.2, 0.5, 0.35)),
        ("ellipse", (0.85, -0.15, 0.18, 0.15)),
        ("line", [(-0.45, 0.45), (-0.45, 0.95)], 0.11),
        ("line", [(0.3, 0.4), (0.3, 0.95)], 0.11),
    ],
    "sofa": [
        _rect(-1.0, -0.5, 1.0, 0.05),
        _rect(-1.0, -0.15, -0.72, 0.65),
        _rect(0.72, -0.15, 1.0, 0.65),
        _rect(-0.75, 0.05, 0.75, 0.55),
    ],
    "train": [
        ("poly", [(-1.0, -0.42), (-0.08, -0.42), (-0.08, 0.42), (-1.0, 0.42)]),
        ("poly", [(0.02, -0.42), (0.75, -0.42), (1.0, -0.1), (1.0, 0.42), (0.02, 0.42)]),
        ("line", [(-0.12, 0.2), (0.06, 0.2)], 0.08),
    ],
    "tvmonitor": [
        _rect(-0.95, -0.75, 0.95, 0.5),
        ("poly", [(-0.1, 0.5), (0.1, 0.5), (0.35, 0.85), (-0.35, 0.85)]),
    ],
}

# class -> (shape, colour A, colour B, texture, typical stretch (width / height), upright)
CLASS_STYLES: dict[int, tuple[str, tuple[int, int, int], tuple[int, int, int], str, float, bool]] = {
    1: ("aeroplane", (228, 228, 236), (35, 70, 205), "hstripes", 1.3, False),
    2: ("bicycle", (0, 190, 205), (0, 120, 130), "solid", 1.2, True),
    3: ("bird", (250, 235, 40), (70, 60, 50), "gradient", 1.0, False),
    4: ("boat", (235, 105, 35), (250, 250, 250), "hstripes", 1.1, True),
    5: ("bottle", (15, 130, 45), (120, 215, 130), "vstripes", 0.55, True),
    6: ("bus", (250, 190, 0), (35, 35, 60), "checker", 1.4, True),
    7: ("car", (215, 25, 35), (120, 10, 20), "solid", 1.4, True),
    8: ("cat", (235, 105, 175), (120, 40, 90), "vstripes", 1.0, False),
    9: ("chair", (0, 150, 120), (0, 95, 75), "solid", 0.8, True),
    10: ("cow", (245, 245, 245), (25, 25, 25), "dots", 1.3, True),
    11: ("diningtable", (230, 190, 120), (175, 120, 55), "hstripes", 1.5, True),
    12: ("dog", (140, 20, 60), (230, 140, 160), "diag", 1.1, True),
    13: ("horse", (165, 85, 35), (90, 45, 15), "gradient", 1.0, True),
    14: ("motorbike", (50, 60, 215), (20, 20, 25), "checker", 1.3, True),
    15: ("person", (250, 195, 165), (40, 90, 200), "halves", 0.5, True),
    16: ("pottedplant", (125, 225, 40), (30, 95, 20), "dots", 0.8, True),
    17: ("sheep", (245, 232, 160), (195, 180, 100), "rings", 1.3, True),
    18: ("sofa", (120, 35, 175), (70, 15, 110), "hstripes", 1.5, True),
    19: ("train", (35, 35, 40), (230, 45, 45), "vstripes", 2.2, True),
    20: ("tvmonitor", (25, 25, 30), (60, 150, 235), "frame", 1.2, True),
}
CLASSES: tuple[int, ...] = tuple(sorted(CLASS_STYLES))
TEXTURES = ("solid", "hstripes", "vstripes", "diag", "checker", "dots", "rings", "gradient", "halves", "frame")


@dataclass(frozen=True)
class Placement:
    """Where an object lands: centre and radius in pixels, stretch, mirror, rotation (radians)."""

    cx: float
    cy: float
    radius: float
    stretch: float
    mirror: bool
    angle: float

    def to_pixels(self, points: list[Point]) -> list[Point]:
        """Object frame -> image pixels: stretch, mirror, rotate, scale, shift."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        sx = math.sqrt(self.stretch) * (-1.0 if self.mirror else 1.0)
        sy = 1.0 / math.sqrt(self.stretch)
        out = []
        for x, y in points:
            u, v = x * sx, y * sy
            out.append((self.cx + self.radius * (u * cos - v * sin), self.cy + self.radius * (u * sin + v * cos)))
        return out

    def to_object(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image pixels -> object frame (the inverse of ``to_pixels``), for texturing."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        dx, dy = (xs - self.cx) / self.radius, (ys - self.cy) / self.radius
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        sx = math.sqrt(self.stretch) * (-1.0 if self.mirror else 1.0)
        return u / sx, v * math.sqrt(self.stretch)


def _ellipse_points(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> list[Point]:
    return [(cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n)) for k in range(n)]


def render_parts(draw: ImageDraw.ImageDraw, shape: str, where: Placement, fill: int, thinnest: int = 1) -> None:
    """Draw one shape's silhouette (every part) with value ``fill``; thin parts stay ``thinnest`` px wide or more."""
    for part in SHAPES[shape]:
        kind = part[0]
        if kind == "poly":
            draw.polygon(where.to_pixels(part[1]), fill=fill)
        elif kind == "ellipse":
            draw.polygon(where.to_pixels(_ellipse_points(*part[1])), fill=fill)
        else:
            width = max(thinnest, int(round(part[2] * where.radius)))
            if kind == "line":
                points = where.to_pixels(part[1])
            else:  # ring: a closed circle outline (wheels)
                cx, cy, r = part[1]
                ring = _ellipse_points(cx, cy, r, r, 36)
                points = where.to_pixels([*ring, ring[0]])
            draw.line(points, fill=fill, width=width, joint="curve")


def texture(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """How much of colour B each pixel gets (0..1), from its object-frame position.

    Patterns live in the object frame, so they turn and scale with the object
    and the same class looks alike at every resolution.
    """
    wave = 2.0 * math.pi / period
    if kind == "solid":
        return np.zeros_like(u)
    if kind == "hstripes":
        return (np.sin(v * wave) > 0.3).astype(np.float64)
    if kind == "vstripes":
        return (np.sin(u * wave) > 0.3).astype(np.float64)
    if kind == "diag":
        return (np.sin((u + v) * wave * 0.8) > 0.0).astype(np.float64)
    if kind == "checker":
        return ((np.sin(u * wave) > 0) ^ (np.sin(v * wave) > 0)).astype(np.float64)
    if kind == "dots":
        return ((np.sin(u * wave * 0.6) * np.sin(v * wave * 0.6)) > 0.55).astype(np.float64)
    if kind == "rings":
        return (np.sin(np.hypot(u, v) * wave * 1.3) > 0.2).astype(np.float64)
    if kind == "gradient":
        return np.clip(0.5 + 0.7 * v, 0.0, 1.0)
    if kind == "halves":
        return (v > 0.05).astype(np.float64)
    if kind == "frame":
        inner = (np.abs(u) < 0.78) & (v > -0.6) & (v < 0.36)
        return inner.astype(np.float64)
    raise ValueError(f"unknown texture {kind!r}; one of {TEXTURES}")
