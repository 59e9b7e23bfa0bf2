"""Overlay, mask PNG and class fractions at full size without full-size copies: the same images and counts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import segedge.edge.postprocess as postprocess
from segedge.contract.labels import VOC_CLASSES, VOID
from segedge.data import read_mask
from segedge.data.images import mask_to_image
from segedge.edge.postprocess import class_fractions, overlay, save_image, save_mask


def scene(width: int, height: int, seed: int) -> tuple[Image.Image, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    mask = rng.integers(0, 21, (height, width)).astype(np.uint8)
    mask[: height // 3] = 0  # background: left as the photo is
    mask[-2:, :3] = VOID
    return image, mask


def one_pass(image: Image.Image, mask: np.ndarray, alpha: float) -> np.ndarray:
    """The tint over the whole image at once: blend with the palette colours where a class other than
    background is, the photo elsewhere."""
    base = image.convert("RGB")
    colours = mask_to_image(mask).convert("RGB")
    tinted = Image.fromarray(np.where(mask == 0, 0, 255).astype(np.uint8), "L")
    return np.asarray(Image.composite(Image.blend(base, colours, alpha), base, tinted))


@pytest.mark.parametrize("alpha", [0.4, 0.5, 1.0, 1.3])
@pytest.mark.parametrize(("width", "height"), [(61, 47), (160, 121), (7, 300)])
def test_the_banded_overlay_is_the_one_pass_tint(width, height, alpha, monkeypatch):
    """Any band size gives the same picture; it is the alpha blend of the palette colours over the classes
    (within one level: PIL's integer mask blend rounds where Image.blend's float one may not) and the photo
    itself on background; the caller's image is left as it was."""
    image, mask = scene(width, height, width + height)
    before = np.asarray(image).copy()
    monkeypatch.setattr(postprocess, "OVERLAY_BAND_PIXELS", 1 << 40)
    whole = np.asarray(overlay(image, mask, alpha=alpha, legend=False))
    for band_pixels in (1, width * 3, width * 64 + 5):
        monkeypatch.setattr(postprocess, "OVERLAY_BAND_PIXELS", band_pixels)
        got = overlay(image, mask, alpha=alpha, legend=False)
        assert got.mode == "RGB" and got.size == image.size
        np.testing.assert_array_equal(np.asarray(got), whole)
    expected = one_pass(image, mask, alpha)
    np.testing.assert_allclose(whole.astype(np.int32), expected.astype(np.int32), atol=1)
    background = mask == 0
    np.testing.assert_array_equal(whole[background], before[background])
    np.testing.assert_array_equal(np.asarray(image), before)


def test_the_legend_still_goes_over_a_banded_overlay(monkeypatch):
    image, mask = scene(400, 300, 1)
    monkeypatch.setattr(postprocess, "OVERLAY_BAND_PIXELS", 400 * 7)
    drawn = np.asarray(overlay(image, mask, classes=VOC_CLASSES), dtype=np.int32)
    plain = np.asarray(overlay(image, mask, legend=False), dtype=np.int32)
    assert (drawn[:20, :40] != plain[:20, :40]).any()  # the legend box in the top-left corner
    np.testing.assert_array_equal(drawn[150:, 200:], plain[150:, 200:])


def test_a_strided_mask_is_counted_and_written_as_its_values(tmp_path):
    _, mask = scene(90, 60, 3)
    strided = mask[:, ::2]  # not contiguous: a view numpy cannot hand PIL as it is
    counts = np.bincount(strided.ravel(), minlength=256)
    fractions = class_fractions(strided, VOC_CLASSES)
    assert fractions == {(VOC_CLASSES[i] if i < len(VOC_CLASSES) else "void"): round(int(counts[i]) / strided.size, 6)
                         for i in np.flatnonzero(counts)}
    path = save_mask(tmp_path / "m.png", strided)
    np.testing.assert_array_equal(read_mask(path), strided)
    assert Image.open(path).mode == "P"


def test_save_image_writes_an_rgb_overlay_and_converts_other_modes(tmp_path):
    image, mask = scene(64, 48, 4)
    shown = overlay(image, mask)
    save_image(tmp_path / "o.png", shown)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), np.asarray(shown))
    save_image(tmp_path / "g.png", image.convert("L"))
    assert Image.open(tmp_path / "g.png").mode == "RGB"


@pytest.mark.parametrize("alpha", [0.5, 1.3])
def test_bands_and_columns_without_a_class_are_skipped_and_the_picture_is_the_same(alpha, monkeypatch):
    """A small object: most bands hold only background and the others only a few columns of class; the tint
    over just those columns is the one-pass tint, and drawing in place gives the same picture on the image."""
    image, _ = scene(300, 200, 5)
    mask = np.zeros((200, 300), np.uint8)
    mask[90:120, 140:170] = 8
    mask[119, 299] = 15  # a class at the last column: the box reaches the edge
    before = np.asarray(image).copy()
    monkeypatch.setattr(postprocess, "OVERLAY_BAND_PIXELS", 300 * 16)
    got = np.asarray(overlay(image, mask, alpha=alpha, legend=False))
    np.testing.assert_allclose(got.astype(np.int32), one_pass(image, mask, alpha).astype(np.int32), atol=1)
    np.testing.assert_array_equal(got[mask == 0], before[mask == 0])
    drawn = overlay(image, mask, alpha=alpha, legend=False, in_place=True)
    assert drawn is image
    np.testing.assert_array_equal(np.asarray(image), got)


def test_counts_given_draw_the_same_legend_as_counted():
    image, mask = scene(400, 300, 6)
    counted = np.asarray(overlay(image, mask, classes=VOC_CLASSES))
    given = np.asarray(overlay(image, mask, classes=VOC_CLASSES, counts=postprocess.mask_counts(mask)))
    np.testing.assert_array_equal(given, counted)
    assert postprocess.mask_counts(mask) == np.bincount(mask.ravel(), minlength=256).tolist()
    # the counts given are the ones the legend lists (not counted again): one class only, a shorter legend
    one = [0] * 256
    one[8] = 1
    listed = np.asarray(overlay(image, mask, classes=VOC_CLASSES, counts=one))
    plain = np.asarray(overlay(image, mask, legend=False))
    assert (listed != counted).any()
    np.testing.assert_array_equal(listed[150:], plain[150:])  # one legend line: the lower half is the tint alone
