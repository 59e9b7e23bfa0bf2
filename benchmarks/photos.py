"""The test photo the frame-time benchmarks use: a 500x375 JPEG, the size of a typical VOC photo.

Drawn by the same generator as ``segedge data synth`` (so the demo model sees
its own kind of picture, and boundaries are where the issue's mask work is),
resized to exactly 500x375 and saved as a quality-90 JPEG, so the end-to-end
time includes a real JPEG decode from disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from segedge.data.synth import make_sample

PHOTO_SIZE = (500, 375)  # (width, height)


def write_photo(path: Path, seed: int = 0, size: tuple[int, int] = PHOTO_SIZE) -> Path:
    """A synthetic scene as a JPEG of ``size`` at ``path``; the same picture for the same seed."""
    photo, _ = make_sample(np.random.default_rng(seed), max(size), max_shapes=3)
    photo.resize(size, Image.BICUBIC).save(path, format="JPEG", quality=90)
    return path


def write_photos(folder: Path, count: int, size: tuple[int, int] = PHOTO_SIZE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_photo(folder / f"photo_{i:02d}.jpg", seed=i, size=size) for i in range(count)]
