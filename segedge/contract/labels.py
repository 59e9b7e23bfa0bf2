"""Pascal VOC's label set: class names, the standard colour palette, void.

VOC is the default dataset, not the only one: a dataset's own classes come from its
``classes.json`` (``segedge.contract.classes.ClassSpec``), which falls back to these constants.
"""

from __future__ import annotations

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
    "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
NUM_CLASSES = len(VOC_CLASSES)
VOID = 255


def _bit_interleaved_palette(n: int = 256) -> list[tuple[int, int, int]]:
    """The VOC devkit palette: bits of the index spread over R, G, B, high bit first."""
    palette = []
    for index in range(n):
        r = g = b = 0
        code = index
        for bit in range(8):
            r |= ((code >> 0) & 1) << (7 - bit)
            g |= ((code >> 1) & 1) << (7 - bit)
            b |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        palette.append((r, g, b))
    return palette


PALETTE: tuple[tuple[int, int, int], ...] = tuple(_bit_interleaved_palette())


def flat_palette() -> list[int]:
    """768 ints as PIL's ``Image.putpalette`` wants them."""
    return [channel for rgb in PALETTE for channel in rgb]
