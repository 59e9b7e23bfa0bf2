"""``Segmenter.predict`` as a Python API: paths, PIL images and arrays, read exactly as ``segedge predict`` reads.

The real tiny bundle checks that the three input kinds, EXIF orientation and
alpha give the same masks as their plain-RGB equivalents; a stand-in backend
whose class is "red channel above half" gives masks whose expected values
follow from the pixels by hand, so a wrong rotation direction or alpha
composited onto black shows up as wrong classes, not just as a different mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segedge.contract.manifest import load_manifest
from segedge.data.voc import VocDataset
from segedge.edge.predictor import Segmenter, load
from segedge.edge.runner import predict_files
from segedge.edge.sources import resolve_inputs
from segedge.util.errors import ConfigError

ORIENTATION = 0x0112  # EXIF tag


def fp32_tflite(bundle: Path) -> str:
    return next(name for name, info in load_manifest(bundle).artifacts.items()
                if (info.runtime, info.precision) == ("tflite", "fp32"))


@pytest.fixture(scope="module")
def photo(synth_root: Path) -> Image.Image:
    """A synthetic scene with objects, at a non-square size so a 90 degree turn changes the mask's shape."""
    dataset = VocDataset.open(synth_root)
    return dataset.load_image(dataset.ids("train")[0]).resize((72, 40), Image.BILINEAR)


def save_rotated_jpeg(image: Image.Image, path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    image.save(path, format="JPEG", quality=95, exif=exif)
    return path


def test_a_path_a_pil_image_and_an_array_give_the_same_mask(tiny_bundle, photo, tmp_path):
    path = tmp_path / "photo.png"  # lossless: the file holds exactly the array's pixels
    photo.save(path)
    with load(tiny_bundle, artifact=fp32_tflite(tiny_bundle), threads=1) as seg:
        from_array = seg.predict(np.asarray(photo))
        assert from_array.shape == (40, 72) and from_array.dtype == np.uint8
        for given in (path, str(path), Image.open(path), photo):
            np.testing.assert_array_equal(seg.predict(given), from_array)
        masks = seg.predict_batch([str(path), Image.open(path), np.asarray(photo)])
        for mask in masks:
            np.testing.assert_array_equal(mask, from_array)
        with pytest.raises(ConfigError, match=r"for one image call predict\(\)"):
            seg.predict_batch(str(path))  # a str is a sequence of characters, not of paths


@pytest.mark.parametrize(("orientation", "turns"), [(6, -1), (8, 1)])  # 6: turn 90 degrees clockwise to view
def test_exif_rotated_jpeg_is_segmented_upright(tiny_bundle, photo, tmp_path, orientation, turns):
    path = save_rotated_jpeg(photo, tmp_path / "phone.jpg", orientation)
    stored = np.asarray(Image.open(path).convert("RGB"))  # the decoded pixels, as stored (72 wide)
    upright = np.ascontiguousarray(np.rot90(stored, k=turns))  # np.rot90: k=1 is counter-clockwise
    with load(tiny_bundle, artifact=fp32_tflite(tiny_bundle), threads=1) as seg:
        from_path = seg.predict(path)
        assert from_path.shape == (72, 40)  # rotated: 40 wide, 72 high
        np.testing.assert_array_equal(from_path, seg.predict(upright))
        np.testing.assert_array_equal(seg.predict(Image.open(path)), from_path)
        # The CLI's reader is the same: `segedge predict` writes the same mask for the same file.
        result = predict_files(seg, resolve_inputs(path).sources, None, overlay=False, single=True, keep_masks=True)
        np.testing.assert_array_equal(result.images[0].mask, from_path)
        assert result.images[0].size == (40, 72)


def test_half_transparent_rgba_gives_the_rgb_images_mask(tiny_bundle, photo, tmp_path):
    rgba = photo.convert("RGBA")
    rgba.putalpha(128)
    path = tmp_path / "cutout.png"
    rgba.save(path)
    with load(tiny_bundle, artifact=fp32_tflite(tiny_bundle), threads=1) as seg:
        expected = seg.predict(np.asarray(photo))
        np.testing.assert_array_equal(seg.predict(rgba), expected)
        np.testing.assert_array_equal(seg.predict(path), expected)
        np.testing.assert_array_equal(seg.predict(Image.open(path).convert("LA")),
                                      seg.predict(photo.convert("L")))


@pytest.mark.parametrize("bad", [
    np.zeros((8, 8), np.uint8),
    np.zeros((8, 8, 4), np.uint8),
    np.zeros((8, 8, 3), np.float32),
    np.zeros((1, 8, 8, 3), np.uint8),
    np.zeros((0, 8, 3), np.uint8),
    [[0, 0, 0]],
    b"\xff\xd8",
])
def test_other_inputs_are_refused_with_one_line(tiny_bundle, bad):
    with load(tiny_bundle, artifact=fp32_tflite(tiny_bundle), threads=1) as seg:
        with pytest.raises(ConfigError) as err:
            seg.predict(bad)
    message = err.value.message
    assert "\n" not in message and err.value.exit_code == 2
    assert message.startswith("predict() takes a path (str or os.PathLike), a PIL image, or an HxWx3 uint8 RGB")
    if isinstance(bad, np.ndarray):
        assert f"shape {bad.shape} and dtype {bad.dtype}" in message


class RedThresholdBackend:
    """Class 1 where the input's red channel is above the middle of its range, else class 0 (NHWC)."""

    def __init__(self, outputs: int) -> None:
        self.outputs, self.threads = outputs, 1

    def run(self, batch: np.ndarray) -> np.ndarray:
        logits = np.zeros(batch.shape[:3] + (self.outputs,), dtype=np.float32)
        # The Segmenter hands backends uint8 pixels (issue 16: the artifacts scale inside): class 1 iff red > 127.5
        assert batch.dtype == np.uint8
        logits[..., 1] = batch[..., 0].astype(np.float32) - 127.5
        return logits

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)

    def deferred(self, raw: np.ndarray) -> tuple[np.ndarray, None]:
        return raw, None

    def close(self) -> None:
        pass


@pytest.fixture
def red_segmenter(tiny_bundle) -> Segmenter:
    manifest = load_manifest(tiny_bundle)
    assert (manifest.preprocess.scaling, manifest.preprocess.resize) == ("mobilenet", "stretch")
    name = fp32_tflite(tiny_bundle)
    return Segmenter(tiny_bundle / "stand-in.tflite", manifest, name, manifest.artifacts[name],
                     RedThresholdBackend(manifest.model_outputs))


def left_red(width: int = 80, height: int = 40) -> Image.Image:
    pixels = np.full((height, width, 3), 30, dtype=np.uint8)
    pixels[:, : width // 2] = (220, 40, 40)
    return Image.fromarray(pixels, "RGB")


def test_orientation_6_puts_the_left_edge_on_top(red_segmenter, tmp_path):
    path = save_rotated_jpeg(left_red(), tmp_path / "phone.jpg", 6)
    mask = red_segmenter.predict(path)
    # Stored 80x40 with its left half red; turned clockwise it is 40 wide, 80 high, red on top.
    assert mask.shape == (80, 40)
    assert (mask[:30] == 1).all() and (mask[50:] == 0).all()
    assert (red_segmenter.predict(left_red())[:, :30] == 1).all()  # no EXIF: red stays on the left


def test_alpha_is_dropped_not_composited_onto_black(red_segmenter, tmp_path):
    rgba = left_red().convert("RGBA")
    rgba.putalpha(128)  # red 220 over black at alpha 128 would be 110: below the threshold, all class 0
    rgba.save(tmp_path / "cutout.png")
    for given in (rgba, tmp_path / "cutout.png"):
        mask = red_segmenter.predict(given)
        assert (mask[:, :30] == 1).all() and (mask[:, 50:] == 0).all()
