"""``segedge predict`` on images, folders and globs through the real CLI (typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segedge.cli import app
from segedge.contract.manifest import load_manifest
from segedge.data import read_image, read_mask

ARTIFACTS = [("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32")]


def artifact_name(bundle: Path, runtime: str, precision: str) -> str:
    for name, info in load_manifest(bundle).artifacts.items():
        if (info.runtime, info.precision) == (runtime, precision):
            return name
    raise LookupError(f"{bundle} has no {runtime} {precision} artifact")


def invoke(*args: object):
    return CliRunner().invoke(app, ["predict", *(str(a) for a in args)])


def photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path)
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder with two photos, one in a sub-folder, a text file and a broken JPEG."""
    root = tmp_path / "photos"
    photo(root / "b.jpg", (37, 53), 1)
    photo(root / "a.png", (80, 45), 2)
    photo(root / "sub" / "c.jpg", (64, 64), 3)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.mark.parametrize(("runtime", "precision"), ARTIFACTS)
def test_single_image_and_folder_for_each_artifact(tiny_bundle, photos, tmp_path, runtime, precision):
    name = artifact_name(tiny_bundle, runtime, precision)
    out = tmp_path / "out"
    single = invoke(tiny_bundle, photos / "b.jpg", "--out", out, "--format", name)
    assert single.exit_code == 0, single.output
    assert read_mask(out / "b.png").shape == (53, 37)
    overlay = read_image(out / "b_overlay.jpg")  # the photo, plus a legend panel when the legend would hide it
    assert overlay.width >= 37 and overlay.height >= 53
    folder = invoke(tiny_bundle, photos, "--out", out / "all", "--format", name, "--recursive", "--batch", "2")
    assert folder.exit_code == 0, folder.output
    assert "notes.txt" in folder.output and "wrote 3 mask(s) and 3 overlay(s)" in folder.output
    assert read_mask(out / "all" / "a.png").shape == (45, 80)
    assert read_mask(out / "all" / "sub" / "c.png").shape == (64, 64)
    assert (out / "all" / "sub" / "c_overlay.jpg").is_file()


def test_fp32_masks_through_the_cli_match_the_reference(tiny_bundle, tmp_path):
    """Reference inputs as lossless PNGs -> predict -> masks read back == Keras on >= 99.9 %."""
    manifest = load_manifest(tiny_bundle)
    with np.load(tiny_bundle / "reference.npz") as ref:
        inputs, keras = ref["inputs"], ref["keras"]
    keras = np.where(keras >= manifest.num_classes, manifest.void, keras)
    (tmp_path / "ref").mkdir()
    for i, pixels in enumerate(inputs):
        Image.fromarray(pixels, "RGB").save(tmp_path / "ref" / f"{i:03d}.png")
    result = invoke(tiny_bundle, tmp_path / "ref", "--out", tmp_path / "out", "--no-overlay",
                    "--format", artifact_name(tiny_bundle, "tflite", "fp32"))
    assert result.exit_code == 0, result.output
    masks = np.stack([read_mask(tmp_path / "out" / f"{i:03d}.png") for i in range(len(inputs))])
    assert float((masks == keras).mean()) >= 0.999
    assert not list((tmp_path / "out").glob("*_overlay.jpg"))


def test_json_prints_class_fractions(tiny_bundle, photos):
    result = CliRunner().invoke(app, ["predict", str(tiny_bundle), str(photos / "*.jpg"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [Path(item["input"]).name for item in report["images"]] == ["b.jpg"]
    image = report["images"][0]
    assert (image["width"], image["height"], image["mask"]) == (37, 53, None)
    assert sum(image["classes"].values()) == pytest.approx(1.0, abs=1e-4)
    assert set(image["classes"]) <= set(load_manifest(tiny_bundle).classes) | {"void"}


def test_folder_with_an_unreadable_image_finishes_the_rest_then_fails(tiny_bundle, photos, tmp_path):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = invoke(tiny_bundle, photos, "--out", tmp_path / "out")
    assert result.exit_code == 3, result.output
    assert "broken.jpg" in result.output and "1 of 3 image(s) could not be read" in result.output
    assert "sub-folder(s)" in result.output  # sub/ not searched without --recursive
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "b.png").is_file()


def test_single_unreadable_image_is_an_error_naming_it(tiny_bundle, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG truncated")
    result = invoke(tiny_bundle, bad, "--out", tmp_path / "out")
    assert result.exit_code == 3 and "bad.png" in result.output
    assert not (tmp_path / "out" / "bad.png").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--every", "2"], "only apply with --camera"),
    (["--alpha", "1.5"], "--alpha must be in"),
    (["--camera", "0"], "not both"),
    (["--runtime", "tensorrt"], "--runtime must be tflite or onnx"),
])
def test_bad_options_exit_2_before_loading(tiny_bundle, photos, tmp_path, args, message):
    result = invoke(tiny_bundle, photos / "b.jpg", "--out", tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_nothing_to_write_and_missing_input(tiny_bundle, photos, tmp_path):
    assert "pass --out DIR" in invoke(tiny_bundle, photos / "b.jpg").output
    result = invoke(tiny_bundle, tmp_path / "nope", "--out", tmp_path / "out")
    assert result.exit_code == 3 and "nope: no such image" in result.output
    assert invoke(tiny_bundle).exit_code == 2


def test_out_inside_the_input_folder_never_overwrites_an_input(tiny_bundle, photos, tmp_path):
    result = invoke(tiny_bundle, photos, "--out", photos)  # the user's folder: never written into
    assert result.exit_code == 8 and f"{photos}: holds" in result.output and "not written by segedge" in result.output
    assert read_image(photos / "a.png").size == (80, 45)
    assert sorted(p.name for p in photos.iterdir()) == ["a.png", "b.jpg", "notes.txt", "sub"]
    # a photo the user dropped into an earlier predictions folder is not replaced by its own mask either
    out = tmp_path / "out"
    assert invoke(tiny_bundle, photos / "b.jpg", "--out", out).exit_code == 0
    dropped = photo(out / "d.png", (30, 20), 4)
    result = invoke(tiny_bundle, dropped, "--out", out)
    assert result.exit_code == 2 and "would overwrite the input image" in result.output
    assert read_image(dropped).size == (30, 20)


def test_bad_bundle_exits_4(tiny_bundle, photos, tmp_path):
    result = invoke(tmp_path, photos / "b.jpg", "--out", tmp_path / "out")
    assert result.exit_code == 4 and "manifest not found" in result.output


def test_exif_rotated_photo_gets_an_upright_mask(tiny_bundle, tmp_path):
    """A phone photo stored landscape with 'rotate 90' in EXIF: mask and overlay match what viewers show."""
    pixels = np.random.default_rng(4).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels, "RGB").save(path, exif=exif)
    result = invoke(tiny_bundle, path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert read_mask(tmp_path / "out" / "phone.png").shape == (40, 20)


def test_several_inputs_from_an_unquoted_shell_glob(tiny_bundle, photos, tmp_path):
    (photos / "broken.jpg").write_bytes(b"nope")
    result = invoke(tiny_bundle, photos / "a.png", photos / "b.jpg", photos / "broken.jpg", "--out", tmp_path / "o")
    assert result.exit_code == 3 and "1 of 3 image(s) could not be read" in result.output
    assert (tmp_path / "o" / "a.png").is_file() and (tmp_path / "o" / "b.png").is_file()
