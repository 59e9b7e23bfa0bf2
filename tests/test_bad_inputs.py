"""Hostile inputs: each case is one readable line naming the file, a non-zero exit, nothing new written.

A table of cases, each a function that damages a private copy of a generated
dataset (or bundle) and returns the CLI arguments to run and the text the
error must contain. Cases that must be *accepted* (odd but valid image modes)
live in their own table.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segedge.cli import app
from segedge.data.voc import VocDataset

runner = CliRunner()


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Path, Path], tuple[list[str], str]]  # (dataset copy, out dir) -> (argv, must-contain)


def _first(root: Path, split: str = "train") -> str:
    return VocDataset.open(root).ids(split)[0]


def zero_byte_jpeg(root: Path, out: Path):
    path = root / "JPEGImages" / f"{_first(root)}.jpg"
    path.write_bytes(b"")
    return ["data", "check", str(root)], path.name


def truncated_jpeg(root: Path, out: Path):
    path = root / "JPEGImages" / f"{_first(root)}.jpg"
    path.write_bytes(path.read_bytes()[:300])
    return ["data", "check", str(root)], path.name


def text_named_jpg(root: Path, out: Path):
    path = root / "JPEGImages" / f"{_first(root)}.jpg"
    path.write_text("this is not an image\n")
    return ["data", "check", str(root)], path.name


def mask_wrong_size(root: Path, out: Path):
    path = root / "SegmentationClass" / f"{_first(root)}.png"
    mask = Image.open(path)
    mask.resize((mask.width // 2, mask.height), Image.NEAREST).save(path)
    return ["data", "check", str(root)], path.name


def mask_values_out_of_range(root: Path, out: Path):
    path = root / "SegmentationClass" / f"{_first(root)}.png"
    mask = Image.open(path)
    values = np.asarray(mask).copy()
    values[:3, :3] = 77
    bad = Image.fromarray(values, "P")
    bad.putpalette(mask.getpalette())
    bad.save(path)
    return ["data", "check", str(root)], path.name


def rgb_mask_not_voc_colours(root: Path, out: Path):
    path = root / "SegmentationClass" / f"{_first(root)}.png"
    size = Image.open(path).size
    Image.new("RGB", size, (13, 200, 77)).save(path)
    return ["data", "check", str(root)], path.name


def id_without_image(root: Path, out: Path):
    split = root / "ImageSets/Segmentation/train.txt"
    split.write_text(split.read_text() + "ghost_000001\n")
    return ["data", "check", str(root)], "ghost_000001.jpg"


def empty_split_file(root: Path, out: Path):
    (root / "ImageSets/Segmentation/val.txt").write_text("")
    return ["data", "check", str(root)], "val.txt"


def missing_split_files(root: Path, out: Path):
    for name in ("train", "val", "trainval"):
        (root / f"ImageSets/Segmentation/{name}.txt").unlink()
    return ["data", "check", str(root)], "train.txt"


def traversal_in_split(root: Path, out: Path):
    split = root / "ImageSets/Segmentation/train.txt"
    split.write_text("../../../etc/passwd\n" + split.read_text())
    return ["data", "check", str(root)], "train.txt"


def absolute_path_in_split(root: Path, out: Path):
    split = root / "ImageSets/Segmentation/val.txt"
    split.write_text("/etc/hostname\n" + split.read_text())
    return ["data", "check", str(root)], "val.txt"


def duplicate_ids(root: Path, out: Path):
    split = root / "ImageSets/Segmentation/train.txt"
    first = split.read_text().splitlines()[0]
    split.write_text(split.read_text() + first + "\n")
    return ["data", "check", str(root)], "listed twice"


def dataset_path_missing(root: Path, out: Path):
    return ["data", "check", str(root / "nope")], "nope"


def not_a_voc_folder(root: Path, out: Path):
    shutil.rmtree(root / "JPEGImages")
    return ["data", "check", str(root)], str(root.name)


def synth_negative_count(root: Path, out: Path):
    return ["data", "synth", str(out / "x"), "--images", "-4"], "--images"


REJECTED = [
    Case(f.__name__, f)
    for f in (
        zero_byte_jpeg, truncated_jpeg, text_named_jpg, mask_wrong_size, mask_values_out_of_range,
        rgb_mask_not_voc_colours, id_without_image, empty_split_file, missing_split_files,
        traversal_in_split, absolute_path_in_split, duplicate_ids, dataset_path_missing,
        not_a_voc_folder, synth_negative_count,
    )
]


def _snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("case", REJECTED, ids=lambda c: c.name)
def test_rejected_with_one_clear_line(case: Case, synth_copy: Path, tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    argv, must_contain = case.damage(synth_copy, out)
    before = _snapshot(out)
    result = runner.invoke(app, argv)
    assert result.exit_code != 0, result.output
    assert must_contain in result.output, result.output
    assert "Traceback" not in result.output
    assert _snapshot(out) == before


def _as_mode(image: Image.Image, mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    return image.convert(mode)


@pytest.mark.parametrize("mode,suffix", [("RGBA", ".png"), ("L", ".jpg"), ("CMYK", ".jpg"), ("I;16", ".png")])
def test_odd_image_modes_are_accepted_and_converted(mode: str, suffix: str, synth_root: Path, tmp_path: Path):
    from segedge.data.images import read_image

    source = VocDataset.open(synth_root).load_image(_first(synth_root))
    path = tmp_path / f"odd{suffix}"
    _as_mode(source, mode).save(path)
    image = read_image(path)
    assert image.mode == "RGB" and image.size == source.size
    assert np.asarray(image).std() > 0
