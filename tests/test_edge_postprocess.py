"""Masks, palette PNGs, overlays and class fractions: numpy/PIL only, no model needed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segedge.contract.labels import NUM_CLASSES, PALETTE, VOC_CLASSES, VOID
from segedge.data import read_mask
from segedge.edge.postprocess import class_fractions, logits_to_masks, overlay, save_image, save_mask


def test_extra_void_output_becomes_255():
    logits = np.zeros((1, 2, 2, NUM_CLASSES + 1), dtype=np.float32)
    logits[0, 0, 0, 3] = 1.0
    logits[0, 0, 1, NUM_CLASSES] = 1.0  # the seed preset's class 21 = void
    logits[0, 1, 1, 20] = 1.0
    masks = logits_to_masks(logits, NUM_CLASSES, VOID)
    np.testing.assert_array_equal(masks[0], [[3, VOID], [0, 20]])
    assert masks.dtype == np.uint8


def test_palette_png_round_trips_through_segedge_data(tmp_path):
    mask = np.random.default_rng(0).integers(0, NUM_CLASSES, (53, 37)).astype(np.uint8)
    mask[:4, :5] = VOID
    path = save_mask(tmp_path / "sub" / "x.png", mask)
    image = Image.open(path)
    assert image.mode == "P" and image.size == (37, 53)
    assert tuple(image.getpalette()[3 * 15 : 3 * 16]) == PALETTE[15]
    np.testing.assert_array_equal(read_mask(path), mask)
    assert not list((tmp_path / "sub").glob(".segedge-tmp-*"))


def test_class_fractions_name_void_and_sum_to_one():
    mask = np.array([[0, 0, 15, VOID]], dtype=np.uint8)
    fractions = class_fractions(mask, VOC_CLASSES)
    assert fractions == {"background": 0.5, "person": 0.25, "void": 0.25}
    assert list(fractions) == ["background", "person", "void"]


def test_overlay_tints_classes_leaves_background_and_draws_a_legend():
    image = Image.new("RGB", (400, 300), (100, 100, 100))
    mask = np.zeros((300, 400), dtype=np.uint8)
    mask[200:, 300:] = 15  # person, bottom-right, away from the legend
    result = overlay(image, mask, alpha=0.5, classes=VOC_CLASSES)
    assert result.size == image.size
    pixels = np.asarray(result, dtype=np.int32)
    assert tuple(pixels[150, 200]) == (100, 100, 100)  # background untouched
    expected = (np.array([100, 100, 100]) * 0.5 + np.array(PALETTE[15]) * 0.5).round()
    np.testing.assert_allclose(pixels[250, 350], expected, atol=1)
    assert pixels[1, 1].max() < 60  # the dark legend box in the corner
    unlabeled = np.asarray(overlay(image, mask, legend=False), dtype=np.int32)
    assert tuple(unlabeled[5, 5]) == (100, 100, 100)


def test_overlay_keeps_the_image_size_and_shrinks_or_drops_the_legend():
    # too small for even the smallest legend font: the picture keeps its size, without a legend
    image = Image.new("RGB", (37, 53), (100, 100, 100))
    mask = np.full((53, 37), 15, dtype=np.uint8)
    mask[0, 0] = VOID
    result = overlay(image, mask, classes=VOC_CLASSES)
    assert result.size == image.size
    np.testing.assert_array_equal(np.asarray(result), np.asarray(overlay(image, mask, legend=False)))
    # a small image with room for a shrunk legend gets one, still at its own size
    small = Image.new("RGB", (160, 120), (100, 100, 100))
    small_mask = np.zeros((120, 160), dtype=np.uint8)
    small_mask[60:, 80:] = 15
    drawn = np.asarray(overlay(small, small_mask, classes=VOC_CLASSES), dtype=np.int32)
    plain = np.asarray(overlay(small, small_mask, legend=False), dtype=np.int32)
    assert drawn.shape == plain.shape == (120, 160, 3)
    assert (drawn[:30, :80] != plain[:30, :80]).any()  # the legend box in the top-left corner
    np.testing.assert_array_equal(drawn[60:, 80:], plain[60:, 80:])  # the tinted person is untouched


def test_overlay_rejects_a_mask_of_another_size():
    with pytest.raises(ValueError, match="mask is"):
        overlay(Image.new("RGB", (10, 10)), np.zeros((5, 5), dtype=np.uint8))


def test_overlay_saves_as_jpeg_or_png(tmp_path):
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    assert Image.open(save_image(tmp_path / "a.jpg", image)).format == "JPEG"
    assert Image.open(save_image(tmp_path / "a.png", image)).format == "PNG"
