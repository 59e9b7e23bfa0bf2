"""Picture strips: people judge a segmentation by looking at it.

One strip per chosen reference image: image | ground truth | Keras | each
artifact, in the bundle's palette colours, every panel at the image's own
size, with a 1-pixel outline around every region where an artifact disagrees
with Keras (white on dark, black on light so it is visible on any class
colour). The images shown are the worst and the most typical by agreement, so
a reviewer sees both the failure and the norm. Below the panels a legend band
names the classes that appear in the strip (a colour swatch and the class
name, wrapped to the strip's width), so nobody has to know the palette by heart.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segedge.bench.data import EvalSet
from segedge.contract.labels import VOID
from segedge.data.images import palette_table

LABEL_HEIGHT = 14
GAP = 4
SWATCH = 10  # px square of a class colour in the legend band
ENTRY_HEIGHT = 16  # px per legend row
ENTRY_PAD = 12  # px between legend entries on a row
VOID_NAME = "void"

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


def classes_present(masks: list[np.ndarray], num_classes: int) -> list[int]:
    """Sorted class indices shown in ``masks`` (out-of-range predictions count as void, as drawn)."""
    found: set[int] = set()
    for mask in masks:
        values = np.unique(np.asarray(mask))
        found.update(int(v) if v < num_classes else VOID for v in values)
    return sorted(found)


def class_name(index: int, names: list[str] | None) -> str:
    if index == VOID:
        return VOID_NAME
    return names[index] if names and index < len(names) else str(index)


def text_width(text: str) -> int:
    """Pixels ``text`` takes in the font the strip is drawn with (measured, not guessed)."""
    return int(np.ceil(ImageFont.load_default().getlength(text)))


def legend_layout(labels: list[str], width: int) -> tuple[list[tuple[int, int]], int]:
    """Top-left (x, y) of each legend entry inside the band, and the band's height.

    Entries flow left to right and wrap when the next one would pass ``width``;
    an entry wider than the strip gets a row to itself.
    """
    positions: list[tuple[int, int]] = []
    x = y = 0
    for label in labels:
        entry = SWATCH + 4 + text_width(label)
        if x > 0 and x + entry > width:
            x, y = 0, y + ENTRY_HEIGHT
        positions.append((x, y))
        x += entry + ENTRY_PAD
    return positions, (y + ENTRY_HEIGHT + GAP if labels else 0)


def render_strip(image: np.ndarray, truth: np.ndarray, keras: np.ndarray, artifacts: dict[str, np.ndarray],
                 num_classes: int, table: np.ndarray, class_names: list[str] | None = None) -> Image.Image:
    """One labelled strip; ``artifacts`` maps a name to its mask at the image's size.

    Panels keep the image's size (a column widens only to fit its label); the
    legend band below lists exactly the classes drawn in the strip.
    """
    height, width = truth.shape
    panels: list[tuple[str, np.ndarray]] = [
        ("image", np.asarray(image)),
        ("ground truth", display_mask(truth, num_classes, table)),
        ("keras", display_mask(keras, num_classes, table)),
    ]
    for name, mask in artifacts.items():
        rgb = outline(display_mask(mask, num_classes, table), np.asarray(mask) != keras)
        panels.append((f"{name} {100 * float((np.asarray(mask) == keras).mean()):.1f}%", rgb))
    columns = [max(width, text_width(label) + 6) for label, _ in panels]
    strip_width = sum(columns) + GAP * (len(panels) - 1)
    present = classes_present([truth, keras, *artifacts.values()], num_classes)
    names = [class_name(index, class_names) for index in present]
    positions, band = legend_layout(names, strip_width - 4)
    strip = Image.new("RGB", (strip_width, LABEL_HEIGHT + height + band), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    x = 0
    for column, (label, rgb) in zip(columns, panels, strict=True):
        draw.text((x + 2, 1), label, fill=(0, 0, 0))
        strip.paste(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB"), (x, LABEL_HEIGHT))
        x += column + GAP
    top = LABEL_HEIGHT + height + GAP // 2
    for index, name, (ex, ey) in zip(present, names, positions, strict=True):
        colour = tuple(int(c) for c in table[index])
        left, upper = 2 + ex, top + ey + (ENTRY_HEIGHT - SWATCH) // 2
        draw.rectangle((left, upper, left + SWATCH - 1, upper + SWATCH - 1), fill=colour)
        draw.text((left + SWATCH + 4, top + ey + 2), name, fill=(0, 0, 0))
    return strip


def build_gallery(reference: EvalSet, predictions: dict[str, list[np.ndarray]], num_classes: int, count: int = 4,
                  palette: list[list[int]] | None = None, class_names: list[str] | None = None) -> list[Strip]:
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
                               num_classes, table, class_names)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", optimize=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in ids[index])
        caption = f"{ids[index]}: {why} mean agreement with Keras, {100 * per_image[index]:.2f} %"
        strips.append(Strip(f"{rank + 1:02d}-{why}-{safe}.png", ids[index], caption, buffer.getvalue()))
    return strips
