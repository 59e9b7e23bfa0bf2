"""Picture strips: people judge a segmentation by looking at it.

One strip per chosen reference image: image | ground truth | Keras | each
artifact, in VOC palette colours, with a 1-pixel outline around every region
where an artifact disagrees with Keras (white on dark, black on light so it is
visible on any class colour). The images shown are the worst and the most
typical by agreement, so a reviewer sees both the failure and the norm.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from segedge.bench.data import EvalSet
from segedge.edge.postprocess import palette_table
from segedge.labels import VOID

MIN_PANEL = 160  # px: tiny 64 px models are enlarged (nearest) so the outline stays readable
LABEL_HEIGHT = 14
GAP = 4


@dataclass
class Strip:
    name: str  # file name inside gallery/
    image_id: str
    caption: str
    png: bytes


def choose_images(per_image: list[float], count: int) -> list[tuple[int, str]]:
    """Indices of the worst (lowest agreement) and median images: (index, why)."""
    if count <= 0 or not per_image:
        return []
    order = sorted(range(len(per_image)), key=lambda i: (per_image[i], i))
    worst = order[: (count + 1) // 2]
    chosen = [(i, "worst") for i in worst]
    middle = len(order) // 2
    # Walk outwards from the median until the quota is met.
    for offset in range(len(order)):
        if len(chosen) >= min(count, len(order)):
            break
        for candidate in (middle + offset, middle - offset - 1):
            if 0 <= candidate < len(order) and order[candidate] not in {i for i, _ in chosen}:
                chosen.append((order[candidate], "median"))
                if len(chosen) >= min(count, len(order)):
                    break
    return chosen


def display_mask(mask: np.ndarray, num_classes: int, table: np.ndarray) -> np.ndarray:
    """Class indices -> colours, any out-of-range prediction (seed void class) drawn as void."""
    mask = np.where(np.asarray(mask) < num_classes, mask, VOID).astype(np.uint8)
    return table[mask]


def _enlarge(array: np.ndarray, factor: int) -> np.ndarray:
    return array.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else array


def outline(rgb: np.ndarray, differs: np.ndarray) -> np.ndarray:
    """Draw the 1-px border of the ``differs`` regions onto ``rgb`` in a contrasting colour."""
    inside = np.pad(differs, 1, constant_values=False)
    interior = (inside[1:-1, 1:-1] & inside[:-2, 1:-1] & inside[2:, 1:-1]
                & inside[1:-1, :-2] & inside[1:-1, 2:])
    border = differs & ~interior
    out = rgb.copy()
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    out[border & (luminance < 128)] = (255, 255, 255)
    out[border & (luminance >= 128)] = (0, 0, 0)
    return out


def render_strip(image: np.ndarray, truth: np.ndarray, keras: np.ndarray, artifacts: dict[str, np.ndarray],
                 num_classes: int, table: np.ndarray) -> Image.Image:
    """One labelled strip; ``artifacts`` maps a name to its mask at the image's size."""
    height, width = truth.shape
    factor = max(1, -(-MIN_PANEL // max(height, width)))
    panels: list[tuple[str, np.ndarray]] = [
        ("image", _enlarge(image, factor)),
        ("ground truth", _enlarge(display_mask(truth, num_classes, table), factor)),
        ("keras", _enlarge(display_mask(keras, num_classes, table), factor)),
    ]
    for name, mask in artifacts.items():
        differs = _enlarge(np.asarray(mask) != keras, factor)
        rgb = outline(_enlarge(display_mask(mask, num_classes, table), factor), differs)
        panels.append((f"{name} {100 * float((np.asarray(mask) == keras).mean()):.1f}%", rgb))
    pw, ph = width * factor, height * factor
    strip = Image.new("RGB", (len(panels) * (pw + GAP) - GAP, ph + LABEL_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for k, (label, rgb) in enumerate(panels):
        x = k * (pw + GAP)
        draw.text((x + 2, 1), label, fill=(0, 0, 0))
        strip.paste(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB"), (x, LABEL_HEIGHT))
    return strip


def build_gallery(reference: EvalSet, predictions: dict[str, list[np.ndarray]], num_classes: int, count: int = 4,
                  palette: list[list[int]] | None = None) -> list[Strip]:
    """Strips for the worst and median images by mean agreement over the artifacts, at original resolution."""
    if not predictions or reference.keras is None:
        return []
    table = palette_table(palette)
    keras, ids = reference.keras, reference.ids
    per_image = [float(np.mean([(np.asarray(p[i]) == keras[i]).mean() if np.shape(p[i]) == keras[i].shape else 0.0
                                for p in predictions.values()])) for i in range(len(ids))]
    strips = []
    for rank, (index, why) in enumerate(choose_images(per_image, count)):
        shown = {name: p[index] for name, p in predictions.items() if np.shape(p[index]) == keras[index].shape}
        picture = render_strip(reference.upright(index), reference.truth[index], keras[index], shown,
                               num_classes, table)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", optimize=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in ids[index])
        caption = f"{ids[index]}: {why} mean agreement with Keras, {100 * per_image[index]:.2f} %"
        strips.append(Strip(f"{rank + 1:02d}-{why}-{safe}.png", ids[index], caption, buffer.getvalue()))
    return strips
