"""``read_upright`` / ``read_upright_pair``: the ONE reader, for every orientation and pixel mode (issue 16).

Each expectation is built independently of the reader: an upright picture is
stored turned the inverse way with its EXIF tag, and must come back equal to
the picture we started from; 16-bit levels are written as 257 * p and must
come back as p.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segedge.data.images import read_upright, read_upright_pair
from segedge.data.voc import VocDataset
from segedge.util.errors import DataError

# tag -> how to STORE an upright picture so that a viewer applying the tag shows it upright
STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,   # shown rotated 90 degrees clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # shown rotated 90 degrees counter-clockwise
}


def upright_picture() -> np.ndarray:
    """A 5 x 3 (w x h) RGB picture with every pixel distinct, so any wrong turn shows."""
    values = np.arange(5 * 3 * 3, dtype=np.uint8).reshape(3, 5, 3) * 5
    return values


def save_turned(path: Path, upright: Image.Image, tag: int) -> None:
    stored = upright if STORE[tag] is None else upright.transpose(STORE[tag])
    exif = Image.Exif()
    exif[0x0112] = tag
    stored.save(path, exif=exif)


@pytest.mark.parametrize("tag", range(1, 9))
def test_every_exif_orientation_comes_back_upright(tmp_path, tag):
    picture = upright_picture()
    path = tmp_path / f"o{tag}.png"
    save_turned(path, Image.fromarray(picture, "RGB"), tag)
    assert np.array_equal(np.asarray(read_upright(path)), picture)


@pytest.mark.parametrize("tag", [3, 6, 8])
def test_mask_drawn_on_stored_pixels_is_turned_with_its_image(tmp_path, tag):
    picture = upright_picture()
    mask = (np.arange(15, dtype=np.uint8).reshape(3, 5) % 4)
    mask[0, 0] = 255
    save_turned(tmp_path / "a.png", Image.fromarray(picture, "RGB"), tag)
    stored_mask = Image.fromarray(mask, "L") if STORE[tag] is None else Image.fromarray(mask, "L").transpose(STORE[tag])
    stored_mask.convert("P").save(tmp_path / "a_mask.png")
    image, got = read_upright_pair(tmp_path / "a.png", tmp_path / "a_mask.png")
    assert np.array_equal(np.asarray(image), picture)
    assert np.array_equal(got, mask)  # still on the same pixels: class 255 at the upright top-left


def test_mask_already_upright_is_kept_and_a_wrong_size_is_one_line(tmp_path):
    picture = upright_picture()
    mask = np.arange(15, dtype=np.uint8).reshape(3, 5) % 3
    save_turned(tmp_path / "a.png", Image.fromarray(picture, "RGB"), 6)
    Image.fromarray(mask, "L").convert("P").save(tmp_path / "upright_mask.png")
    _, got = read_upright_pair(tmp_path / "a.png", tmp_path / "upright_mask.png")
    assert np.array_equal(got, mask)
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").convert("P").save(tmp_path / "bad.png")
    with pytest.raises(DataError, match="bad.png: mask is 4x4 but its image a.png is 5x3"):
        read_upright_pair(tmp_path / "a.png", tmp_path / "bad.png")


def test_dataset_pairs_training_and_calibration_read_upright(synth_copy):
    dataset = VocDataset.open(synth_copy)
    sample_id = dataset.ids("val")[0]
    image, mask = dataset.load_pair(sample_id)
    upright, upright_mask = np.asarray(image), mask.copy()
    save_turned(dataset.image_path(sample_id).with_suffix(".png"), image, 6)
    dataset.image_path(sample_id).with_suffix(".png").replace(dataset.image_path(sample_id))  # PNG bytes, .jpg name
    Image.fromarray(mask, "L").transpose(STORE[6]).convert("P").save(dataset.mask_path(sample_id))
    image2, mask2 = dataset.load_pair(sample_id)
    assert np.array_equal(np.asarray(image2), upright) and np.array_equal(mask2, upright_mask)
    assert np.array_equal(np.asarray(dataset.load_image(sample_id)), upright)  # calibration's reader


def test_sixteen_bit_png_is_scaled_by_its_bit_depth(tmp_path):
    levels = np.arange(256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(levels * 257).save(tmp_path / "full.png")  # PIL opens it as I;16
    with Image.open(tmp_path / "full.png") as check:
        assert check.mode == "I;16"
    got = np.asarray(read_upright(tmp_path / "full.png"))
    assert np.array_equal(got[..., 0], levels) and np.array_equal(got[..., 2], levels)
    Image.fromarray(levels.astype(np.uint16)).save(tmp_path / "dark.png")  # 16-bit data that is nearly black
    dark = np.asarray(read_upright(tmp_path / "dark.png"))[..., 0]
    assert np.array_equal(dark, np.floor(levels / 257 + 0.5).astype(np.uint8))  # 0..1, not 0..255


def test_mode_i_is_scaled_by_its_values_when_there_is_no_file(tmp_path):
    levels = np.arange(256, dtype=np.int32).reshape(16, 16)
    wide = Image.fromarray(levels * 257)  # mode I holding 16-bit data
    assert wide.mode == "I"
    assert np.array_equal(np.asarray(read_upright(wide))[..., 1], levels)
    narrow = Image.fromarray(levels)  # mode I holding 8-bit data: as is
    assert np.array_equal(np.asarray(read_upright(narrow))[..., 1], levels)


def test_alpha_palette_and_gray_modes(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    assert np.asarray(read_upright(tmp_path / "cut.png")).tolist() == [[[200, 100, 50]] * 3] * 2  # alpha dropped
    pal = Image.fromarray(np.array([[0, 1, 2]], np.uint8), "P")
    pal.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * 759)
    pal.info["transparency"] = 1
    pal.save(tmp_path / "pal.png", transparency=1)
    assert np.asarray(read_upright(tmp_path / "pal.png")).tolist() == [[[10, 20, 30], [40, 50, 60], [70, 80, 90]]]
    Image.fromarray(np.array([[0, 128, 255]], np.uint8), "L").convert("LA").save(tmp_path / "la.png")
    assert np.asarray(read_upright(tmp_path / "la.png")).tolist() == [[[0] * 3, [128] * 3, [255] * 3]]
    assert read_upright(tmp_path / "la.png").mode == "RGB"


@pytest.mark.parametrize(("mode", "pixels", "expected"), [
    ("CMYK", [[(255, 0, 0, 0), (0, 0, 0, 255)]], [[[0, 255, 255], [0, 0, 0]]]),  # pure cyan; full black
    ("1", [[0, 1]], [[[0, 0, 0], [255, 255, 255]]]),
    ("F", [[-1.0, 0.0, 1.0]], [[[0, 0, 0], [128, 128, 128], [255, 255, 255]]]),  # float: its own range
])
def test_other_modes_become_8_bit_rgb(mode, pixels, expected):
    if mode == "CMYK":
        image = Image.frombytes("CMYK", (2, 1), bytes(v for px in pixels[0] for v in px))
    elif mode == "1":
        image = Image.fromarray(np.array(pixels, np.uint8) * 255, "L").convert("1")
    else:
        image = Image.fromarray(np.array(pixels, np.float32), "F")
    got = read_upright(image)
    assert got.mode == "RGB" and np.asarray(got).tolist() == expected


def test_an_upright_rgb_image_is_not_copied_and_a_turned_one_leaves_its_input_alone(tmp_path):
    # a 12 MP photo copied for nothing is 36 MB: the reader hands an upright RGB image on as it is
    picture = Image.fromarray(upright_picture(), "RGB")
    assert read_upright(picture) is picture
    save_turned(tmp_path / "turned.jpg", picture, 6)
    stored = Image.open(tmp_path / "turned.jpg")
    stored.load()
    before = np.asarray(stored).copy()
    upright = read_upright(stored)
    assert upright is not stored and upright.size == (5, 3) and stored.size == (3, 5)
    np.testing.assert_array_equal(np.asarray(stored), before)
