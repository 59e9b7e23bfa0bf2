"""`segedge data synth`: VOC's sizes, all 20 classes, several objects, void outlines, same seed same bytes.

Expectations come from VOC itself (palette colours, class ids 1-20, the void band
that separates every pair of touching labels), not from the generator's tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segedge.data.check import check_dataset
from segedge.data.synth import SynthConfig, generate
from segedge.util.errors import ConfigError

IMAGES = 100
SIZE = 64


@pytest.fixture(scope="module")
def hundred(tmp_path_factory) -> Path:
    """100 generated pairs at a 64 px long side (about a second)."""
    return generate(tmp_path_factory.mktemp("synth100") / "voc", SynthConfig(images=IMAGES, size=SIZE, seed=0))


def _pairs(root: Path) -> list[tuple[Image.Image, np.ndarray]]:
    ids = (root / "ImageSets/Segmentation/trainval.txt").read_text().split()
    return [(Image.open(root / "JPEGImages" / f"{i}.jpg"),
             np.asarray(Image.open(root / "SegmentationClass" / f"{i}.png"))) for i in ids]


def test_sizes_and_aspect_ratios_vary_like_voc(hundred):
    pairs = _pairs(hundred)
    assert len(pairs) == IMAGES
    sizes = [image.size for image, _ in pairs]
    for (image, mask), (width, height) in zip(pairs, sizes, strict=True):
        assert image.format == "JPEG" and image.mode == "RGB"
        assert mask.shape == (height, width)
    long_sides = [max(size) for size in sizes]
    assert max(long_sides) == SIZE and all(side <= SIZE for side in long_sides)
    assert sum(side == SIZE for side in long_sides) > IMAGES // 2  # mostly the full long side, as VOC's 500 px
    landscape = sum(w > h for w, h in sizes)
    portrait = sum(h > w for w, h in sizes)
    assert landscape > portrait > 0  # VOC: mostly landscape, a fair share of portrait
    assert len({round(min(w, h) / max(w, h), 2) for w, h in sizes}) >= 4  # not one aspect ratio
    assert all(min(w, h) / max(w, h) >= 0.45 for w, h in sizes)


def test_all_twenty_classes_appear_and_nothing_else(hundred):
    seen: set[int] = set()
    for _, mask in _pairs(hundred):
        seen |= set(np.unique(mask).tolist())
    assert seen == set(range(21)) | {255}


def test_masks_are_voc_palette_pngs(hundred):
    mask = Image.open(hundred / "SegmentationClass/synth_000000.png")
    assert mask.format == "PNG" and mask.mode == "P"
    palette = mask.getpalette()
    colour = {index: tuple(palette[3 * index:3 * index + 3]) for index in (0, 1, 15, 20, 255)}
    # The VOC devkit's colours: aeroplane dark red, person pink, tvmonitor, void cream.
    assert colour == {0: (0, 0, 0), 1: (128, 0, 0), 15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}


def _touching(mask: np.ndarray, distance: int) -> int:
    """Pairs of different non-void labels at most ``distance`` pixels apart along a row or column."""
    count = 0
    for shift in range(1, distance + 1):
        for a, b in ((mask[:, :-shift], mask[:, shift:]), (mask[:-shift, :], mask[shift:, :])):
            count += int(np.count_nonzero((a != b) & (a != 255) & (b != 255)))
    return count


def test_every_outline_is_a_void_band(hundred):
    """As in VOC: no object pixel touches background or another object directly; void lies between."""
    with_objects = 0
    for _, mask in _pairs(hundred):
        assert _touching(mask, 1) == 0
        if np.any((mask > 0) & (mask < 255)):
            with_objects += 1
            assert np.any(mask == 255)
    assert with_objects >= IMAGES * 0.9


def test_void_band_widens_with_the_image(tmp_path):
    """At VOC's 500 px the band is several pixels wide (VOC's is ~5), not a 1-pixel line."""
    root = generate(tmp_path / "voc", SynthConfig(images=4, size=500, seed=2))
    for image, mask in _pairs(root):
        assert max(image.size) <= 500
        assert _touching(mask, 4) == 0


def test_several_objects_in_some_images(hundred):
    classes_per_image = [len(set(np.unique(mask).tolist()) - {0, 255}) for _, mask in _pairs(hundred)]
    assert sum(n >= 2 for n in classes_per_image) >= 10
    assert max(classes_per_image) >= 3
    assert any(n == 1 for n in classes_per_image)  # and single-object images too


def test_generated_set_passes_check(hundred):
    report = check_dataset(hundred)
    assert report.ok, report.problems
    assert report.counts == {"train": 60, "val": 40, "trainval": 100}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    config = SynthConfig(images=6, size=80, seed=11)
    a, b = generate(tmp_path / "a", config), generate(tmp_path / "b", config)
    c = generate(tmp_path / "c", SynthConfig(images=6, size=80, seed=12))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != ".segedge.json")
    assert len(files) == 6 * 2 + 3
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != ".segedge.json")
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert all((a / "JPEGImages" / f"synth_{i:06d}.jpg").read_bytes()
               != (c / "JPEGImages" / f"synth_{i:06d}.jpg").read_bytes() for i in range(6))


def test_classes_limit_which_objects_are_drawn(tmp_path):
    root = generate(tmp_path / "voc", SynthConfig(images=12, size=48, seed=4, classes=(7, 15)))
    seen: set[int] = set()
    for _, mask in _pairs(root):
        seen |= set(np.unique(mask).tolist())
    assert seen == {0, 7, 15, 255}


@pytest.mark.parametrize("classes", [(), (0,), (21,), (7, 7), (255,)])
def test_classes_outside_voc_objects_are_refused(classes, tmp_path):
    with pytest.raises(ConfigError, match="classes must be distinct VOC object ids 1-20"):
        generate(tmp_path / "voc", SynthConfig(images=4, size=48, classes=classes))
    assert not (tmp_path / "voc").exists()
