"""The pairs layout (issue 17): ``images/`` + ``masks/`` read like VOC, the ratio split, and a 3-class dataset
of your own taken through synth -> train -> export -> predict -> bench --data.

Folders are drawn here with PIL, so every expected label is the value painted, not one the reader computed.
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
from segedge.data import PairsDataset, open_dataset
from segedge.data.check import check_dataset
from segedge.data.images import mask_to_image
from segedge.util.errors import ConfigError, DataError

CLASSES = {"classes": ["background", "leaf", "stem"]}


def _mask(stem: str, height: int = 6, width: int = 8) -> np.ndarray:
    """A mask whose values say which stem it belongs to: row r is (r + len(stem)) % 3, one void pixel."""
    mask = np.array([[(r + len(stem)) % 3] * width for r in range(height)], np.uint8)
    mask[0, 0] = 255
    return mask


def _make_pairs(root: Path, stems: list[str], suffixes: tuple[str, ...] = (".jpg", ".png", ".jpeg"),
                masks: bool = True) -> Path:
    (root / "images").mkdir(parents=True)
    if masks:
        (root / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps(CLASSES))
    for i, stem in enumerate(stems):
        Image.new("RGB", (8, 6), (i * 10 % 255, 90, 30)).save(root / "images" / f"{stem}{suffixes[i % len(suffixes)]}")
        if masks:
            # both single-channel kinds: grayscale, and palette as VOC stores it
            image = Image.fromarray(_mask(stem), "L") if i % 2 else mask_to_image(_mask(stem))
            image.save(root / "masks" / f"{stem}.png")
    return root


def test_pairs_folder_reads_like_voc(tmp_path):
    stems = ["a", "bb", "ccc", "dddd", "eeeee"]
    root = _make_pairs(tmp_path / "ds", stems)
    dataset = open_dataset(root)
    assert isinstance(dataset, PairsDataset) and dataset.layout == "pairs" and dataset.has_masks
    assert dataset.classes.names == ("background", "leaf", "stem")
    assert sorted(dataset.ids("trainval")) == stems
    assert dataset.image_path("bb").name == "bb.png" and dataset.image_path("ccc").name == "ccc.jpeg"
    for stem in stems:
        image, mask = dataset.load_pair(stem)
        assert image.size == (8, 6) and image.mode == "RGB"
        np.testing.assert_array_equal(mask, _mask(stem))
        np.testing.assert_array_equal(dataset.load_mask(stem), _mask(stem))


def test_ratio_split_is_deterministic_disjoint_and_independent_of_file_order(tmp_path):
    stems = [f"img{i:02d}" for i in range(10)]
    forward = open_dataset(_make_pairs(tmp_path / "a", stems))
    backward = open_dataset(_make_pairs(tmp_path / "b", stems[::-1], suffixes=(".png",)))  # other order, files
    train, val = forward.ids("train"), forward.ids("val")
    assert len(val) == 2 and len(train) == 8  # 20 % of 10
    assert not set(train) & set(val) and set(train) | set(val) == set(stems)
    assert (train, val) == (backward.ids("train"), backward.ids("val"))
    assert (train, val) == (open_dataset(tmp_path / "a").ids("train"), open_dataset(tmp_path / "a").ids("val"))
    wider = open_dataset(tmp_path / "a", val_fraction=0.5)
    assert len(wider.ids("val")) == 5 and not set(wider.ids("val")) & set(wider.ids("train"))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 2])
def test_val_fraction_out_of_range_is_refused(tmp_path, fraction):
    root = _make_pairs(tmp_path / "ds", ["a", "b", "c"])
    with pytest.raises(ConfigError, match="--val-fraction must be a number between 0 and 1"):
        open_dataset(root, val_fraction=fraction)


def test_split_files_win_and_one_file_leaves_the_rest_to_the_other(tmp_path):
    stems = ["a", "b", "c", "d", "e"]
    root = _make_pairs(tmp_path / "ds", stems)
    (root / "splits").mkdir()
    (root / "splits" / "val.txt").write_text("d\nb\n")
    dataset = open_dataset(root)
    assert dataset.ids("val") == ["d", "b"] and dataset.ids("train") == ["a", "c", "e"]
    (root / "splits" / "train.txt").write_text("a\n")
    assert open_dataset(root).ids("train") == ["a"]
    (root / "splits" / "val.txt").write_text("d\nzz\n")
    with pytest.raises(DataError, match=r"val\.txt: stem 'zz' has no image"):
        open_dataset(root).ids("val")


def test_image_without_mask_and_mask_without_image_are_named(tmp_path):
    root = _make_pairs(tmp_path / "ds", ["a", "b", "c"])
    (root / "masks" / "b.png").rename(root / "masks" / "bee.png")
    with pytest.raises(DataError, match=r"masks/b\.png: mask not found for b\.png"):
        open_dataset(root).load_pair("b")
    report = check_dataset(root)
    assert not report.ok
    assert any("b.png" in p and "file not found" in p for p in report.problems), report.problems
    assert any("bee.png: mask has no image" in p for p in report.problems), report.problems


def test_training_refuses_an_image_without_mask(tmp_path):
    from segedge.train.config import make_config
    from segedge.train.pipeline import load_training_data

    root = _make_pairs(tmp_path / "ds", [f"s{i}" for i in range(6)])
    (root / "masks" / "s3.png").unlink()
    with pytest.raises(DataError, match=r"s3\.png: mask not found"):
        load_training_data(make_config(root, tmp_path / "run", image_size=32))


def test_images_only_folder_has_no_masks(tmp_path):
    root = _make_pairs(tmp_path / "ds", ["a", "b", "c"], masks=False)
    dataset = open_dataset(root)
    assert not dataset.has_masks and dataset.ids("trainval") == ["a", "b", "c"]
    assert dataset.load_image("a").size == (8, 6)
    with pytest.raises(DataError, match="has images only"):
        dataset.load_mask("a")


def test_two_images_with_one_stem_are_refused(tmp_path):
    root = _make_pairs(tmp_path / "ds", ["a", "b"])
    Image.new("RGB", (8, 6)).save(root / "images" / "a.png")
    with pytest.raises(DataError, match="stem 'a' also names a.jpg"):
        open_dataset(root)


def test_neither_layout_is_one_error(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataError, match="not a dataset: no JPEGImages/"):
        open_dataset(tmp_path / "photos")


def test_synth_pairs_three_classes_is_read_by_open_dataset(tmp_path):
    out = tmp_path / "p3"
    result = CliRunner().invoke(app, ["data", "synth", str(out), "--images", "8", "--size", "48",
                                      "--classes", "3", "--layout", "pairs"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [".segedge.json", "classes.json", "images", "masks"]
    dataset = open_dataset(out)
    assert dataset.layout == "pairs" and dataset.classes.names == ("background", "class1", "class2")
    values: set[int] = set()
    for stem in dataset.ids("trainval"):
        values |= set(np.unique(np.asarray(Image.open(dataset.mask_path(stem)))).tolist())
    assert values <= {0, 1, 2, 255} and {1, 2} & values


def test_synth_classes_outside_range_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["data", "synth", str(tmp_path / "x"), "--classes", "1"])
    assert result.exit_code == 2 and "--classes" in result.output


# -- end to end: a 3-class pairs dataset of your own ------------------------------------------------------------


@pytest.fixture(scope="module")
def own_bundle(tmp_path_factory) -> tuple[Path, Path]:
    """synth (3 classes, pairs, 12 images at 64 px) -> train 1 eager epoch (a quarter validates) -> export fp32,int8."""
    pytest.importorskip("tensorflow", reason="trains a model: needs TensorFlow (pip install 'segedge[train]')")
    base = tmp_path_factory.mktemp("own")
    data, run, bundle = base / "data", base / "run", base / "bundle"
    runner = CliRunner()
    steps = [
        ["data", "synth", str(data), "--images", "12", "--size", "64", "--classes", "3", "--layout", "pairs"],
        ["train", str(data), "--out", str(run), "--image-size", "64", "--epochs", "1", "--batch-size", "4",
         "--run-eagerly", "--val-fraction", "0.25"],
        ["export", str(run), "--out", str(bundle), "--format", "fp32,int8", "--calib-images", "6",
         "--eval-images", "2"],
    ]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{args[0]}: {result.output}"
        if args[0] == "train":  # no splits/ files: the run says how it split
            assert "split official (by ratio: --val-fraction 0.25, no splits/ files): 9 train / 3 val" in result.output
    return data, bundle


def test_own_classes_reach_the_run_and_the_bundle(own_bundle):
    data, bundle = own_bundle
    run = bundle.parent / "run"
    assert json.loads((run / "classes.json").read_text())["classes"] == ["background", "class1", "class2"]
    config = json.loads((run / "config.json").read_text())
    assert config["num_classes"] == 3 and config["num_outputs"] == 3
    split = json.loads((run / "split.json").read_text())
    assert len(split["val"]) == 3 and not set(split["val"]) & set(split["train"])  # --val-fraction 0.25 of 12
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["classes"] == ["background", "class1", "class2"]
    assert manifest["palette"] == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]  # VOC's first three colours


def test_own_classes_predict_three_class_masks_and_json(own_bundle, tmp_path):
    data, bundle = own_bundle
    images = sorted((data / "images").glob("*.jpg"))[:2]
    out = tmp_path / "pred"
    result = CliRunner().invoke(app, ["predict", str(bundle), *map(str, images), "--out", str(out),
                                      "--format", "int8", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["images"]) == 2
    for item in report["images"]:
        assert set(item["classes"]) <= {"background", "class1", "class2"}
        mask = np.asarray(Image.open(item["mask"]))
        assert mask.shape == (item["height"], item["width"]) and int(mask.max()) < 3
        assert Image.open(item["overlay"]).size == (item["width"], item["height"])


def test_own_classes_bench_on_the_dataset(own_bundle, tmp_path):
    data, bundle = own_bundle
    out = tmp_path / "report"
    result = CliRunner().invoke(app, [
        "bench", str(bundle), "--out", str(out), "--data", str(data), "--no-keras", "--runs", "3", "--warmup", "1",
        "--threads", "1", "--e2e-images", "2", "--gallery", "1", "--no-plot",
        "--min-agreement", "0.9", "--max-miou-drop", "5"])
    assert result.exit_code in (0, 7), result.output  # the gate's verdict on a 1-epoch model is not the point
    report = json.loads((out / "report.json").read_text())
    val = json.loads((bundle.parent / "run" / "split.json").read_text())["val"]  # the run's --val-fraction 0.25
    assert val == open_dataset(data, val_fraction=0.25).ids("val") != open_dataset(data).ids("val")
    for name in ("fp32", "int8"):
        assert report["accuracy"][name]["eval_images"] == len(val) == 3
        assert str(data) in report["accuracy"][name]["eval_set"]


def test_bench_refuses_a_dataset_with_other_classes(own_bundle, synth_root, tmp_path):
    _, bundle = own_bundle
    result = CliRunner().invoke(app, ["bench", str(bundle), "--out", str(tmp_path / "r"), "--data", str(synth_root),
                                      "--no-keras"])
    assert result.exit_code == 3, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error:") and "21 classes vs the bundle's 3" in line
    assert str(bundle / "manifest.json") in line and str(synth_root) in line


def test_export_refuses_data_with_other_classes(own_bundle, tmp_path):
    data, bundle = own_bundle
    other = Path(shutil.copytree(data, tmp_path / "other"))
    (other / "classes.json").write_text(json.dumps({"classes": ["background", "class1", "weed"]}))
    result = CliRunner().invoke(app, ["export", str(bundle.parent / "run"), "--out", str(tmp_path / "b"),
                                      "--format", "fp32", "--data", str(other)])
    assert result.exit_code == 3, result.output
    assert "class 2 is 'class2' in the run, 'weed' in the dataset" in result.output
    assert str(other / "classes.json") in result.output
