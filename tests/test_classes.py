"""Classes as data (issue 17): ``classes.json`` parsed and refused line by line, masks read against it,
``data check`` naming label values outside the declared classes, synth's default still VOC's 21.

Expectations are written out by hand (VOC's devkit colours, the values painted into a mask), not taken
from the code under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segedge.cli import app
from segedge.contract.classes import ClassSpec
from segedge.data import open_dataset
from segedge.data.images import mask_to_image, read_mask
from segedge.util.errors import DataError, ModelError

# The VOC devkit's first colours (labelcolormap), written out, not computed.
VOC_FIRST = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]


def _write(path: Path, body: object) -> Path:
    path.write_text(json.dumps(body) if not isinstance(body, str) else body, encoding="utf-8")
    return path


def test_names_only_gets_voc_colours_and_void_255(tmp_path):
    spec = ClassSpec.load(_write(tmp_path / "classes.json", {"classes": ["background", "road", "car"]}))
    assert spec.names == ("background", "road", "car")
    assert list(spec.palette) == VOC_FIRST[:3]
    assert spec.void == 255 and spec.num_classes == 3 and not spec.is_voc


def test_declared_palette_and_void_are_kept(tmp_path):
    body = {"classes": ["bg", "leaf"], "palette": [[1, 2, 3], [200, 100, 50]], "void": 99}
    spec = ClassSpec.load(_write(tmp_path / "classes.json", body))
    assert spec.palette == ((1, 2, 3), (200, 100, 50)) and spec.void == 99
    assert ClassSpec.from_dict(spec.to_dict()) == spec  # what the run folder records reads back the same


def test_folder_without_classes_json_is_voc(tmp_path):
    spec = ClassSpec.for_dataset(tmp_path)
    assert spec.num_classes == 21 and spec.names[15] == "person" and spec.is_voc
    assert list(spec.palette[:4]) == VOC_FIRST


@pytest.mark.parametrize(("body", "expected"), [
    ({"classes": ["bg", "car", "car"]}, "'car' appears twice"),
    ({"classes": ["bg", "car"], "palette": [[0, 0, 0]]}, "1 colours for 2 classes"),
    ({"classes": ["bg", "car"], "void": 1}, "\"void\" 1 is a class index"),
    ({"classes": ["bg", "car"], "void": 256}, "integer 0-255"),
    ({"classes": [f"c{i}" for i in range(256)]}, "256 classes; at most 255"),
    ({"classes": ["bg"]}, "at least 2"),
    ({"classes": ["bg", ""]}, "class 1 has an empty name"),
    ({"classes": ["bg", 3]}, "list of names"),
    ({"names": ["bg", "car"]}, "unknown key(s) ['names']"),
    ({"classes": ["bg", "car"], "palette": [[0, 0, 0], [0, 0, 300]]}, "palette entry 1"),
    ({"classes": ["bg", "car"], "palette": [[5, 5, 5], [5, 5, 5]]}, "used by classes 0 and 1"),
    ([1, 2], "expected a JSON object"),
    ("{not json", "not valid JSON"),
])
def test_bad_classes_json_is_one_data_error_naming_the_file(tmp_path, body, expected):
    path = _write(tmp_path / "classes.json", body)
    with pytest.raises(DataError) as caught:
        ClassSpec.load(path)
    assert caught.value.message.startswith(str(path)) and expected in caught.value.message
    assert "\n" not in caught.value.message


def test_run_folder_classes_raise_model_error(tmp_path):
    with pytest.raises(ModelError, match="appears twice"):
        ClassSpec.load(_write(tmp_path / "classes.json", {"classes": ["a", "a"]}), error=ModelError)


def test_rgb_mask_is_read_through_the_declared_palette(tmp_path):
    spec = ClassSpec.from_dict({"classes": ["bg", "leaf", "stem"], "palette": [[10, 10, 10], [0, 200, 0],
                                                                              [90, 60, 30]]})
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[:] = (10, 10, 10)
    rgb[1, :] = (0, 200, 0)
    rgb[2, 1:3] = (90, 60, 30)
    rgb[3, 4] = (224, 224, 192)  # VOC's void colour
    Image.fromarray(rgb, "RGB").save(tmp_path / "m.png")
    expected = np.zeros((4, 5), np.uint8)
    expected[1, :] = 1
    expected[2, 1:3] = 2
    expected[3, 4] = 255
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", spec), expected)
    rgb[0, 0] = (128, 0, 0)  # VOC's aeroplane: not one of these classes' colours
    Image.fromarray(rgb, "RGB").save(tmp_path / "m.png")
    with pytest.raises(DataError, match=r"m\.png: RGB mask has colour \(128, 0, 0\).*classes\.json"):
        read_mask(tmp_path / "m.png", spec)


def test_index_mask_values_are_checked_and_declared_void_becomes_255(tmp_path):
    spec = ClassSpec.from_dict({"classes": ["bg", "a", "b"], "void": 200})
    values = np.array([[0, 1, 2, 200]], np.uint8)
    Image.fromarray(values, "L").save(tmp_path / "ok.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "ok.png", spec), [[0, 1, 2, 255]])
    Image.fromarray(np.array([[0, 3, 255]], np.uint8), "L").save(tmp_path / "bad.png")
    with pytest.raises(DataError, match=r"bad\.png: mask has label values \[3, 255\] outside the 3 classes"):
        read_mask(tmp_path / "bad.png", spec)


def test_mask_png_uses_the_declared_palette():
    image = mask_to_image(np.array([[0, 1]], np.uint8), [(9, 8, 7), (1, 2, 3)])
    assert image.mode == "P" and image.getpalette()[:6] == [9, 8, 7, 1, 2, 3]
    assert image.getpalette()[255 * 3: 256 * 3] == [224, 224, 192]  # void keeps VOC's colour


def test_voc_dataset_reads_its_classes_json(synth_copy):
    _write(synth_copy / "classes.json", {"classes": [f"k{i}" for i in range(21)]})
    dataset = open_dataset(synth_copy)
    assert dataset.layout == "voc" and dataset.has_masks and dataset.classes.names[20] == "k20"


def test_synth_default_is_voc_without_classes_json(synth_root):
    assert not (synth_root / "classes.json").exists()
    dataset = open_dataset(synth_root)
    assert dataset.layout == "voc" and dataset.classes.is_voc


def _paint_stray(root: Path, stems: list[str], value: int, pixels: int) -> None:
    for stem in stems:
        path = root / "SegmentationClass" / f"{stem}.png"
        image = Image.open(path)
        mask = np.array(image)
        mask.ravel()[:pixels] = value
        out = Image.fromarray(mask, "P")
        out.putpalette(image.getpalette())
        out.save(path)


def test_data_check_names_values_outside_the_declared_classes(synth_root, tmp_path):
    """VOC masks with 21 classes declared under new names, and a value no class has painted into two masks."""
    root = Path(shutil.copytree(synth_root, tmp_path / "voc"))
    masks = sorted((root / "SegmentationClass").glob("*.png"))
    seen = set()
    for path in masks:
        seen |= set(np.unique(np.asarray(Image.open(path))).tolist())
    _write(root / "classes.json", {"classes": ["background", *(f"c{i}" for i in range(1, 21))]})
    _paint_stray(root, [masks[0].stem, masks[1].stem], 77, 10)
    result = CliRunner().invoke(app, ["data", "check", str(root)])
    assert result.exit_code == 3, result.output
    line = next(x for x in result.output.splitlines() if "label value 77" in x)
    assert line.startswith("error: label value 77 is outside the 21 declared classes")
    assert "20 pixels in 2 file(s)" in line and masks[0].name in line and masks[1].name in line
    assert str(root / "classes.json") in line
    present = min(v for v in seen if 0 < v < 21)
    assert f"  c{present} " in result.output  # the per-class table uses the declared names
    assert 77 not in seen  # the painted value was not there before


def test_data_check_passes_with_matching_classes(tmp_path):
    out = tmp_path / "p"
    result = CliRunner().invoke(app, ["data", "synth", str(out), "--images", "6", "--size", "48",
                                      "--classes", "4", "--layout", "pairs"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["data", "check", str(out)])
    assert result.exit_code == 0, result.output
    assert "pairs layout, 4 classes" in result.output and "class3" in result.output and "ok" in result.output
