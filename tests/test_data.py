from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segedge.data import VocDataset, make_split
from segedge.data.check import check_dataset
from segedge.data.splits import Split, seed_counts
from segedge.data.synth import SynthConfig, generate
from segedge.util.errors import DataError


def test_reader_reads_pairs_of_matching_size(synth_root):
    ds = VocDataset.open(synth_root)
    ids = ds.ids("train")
    assert len(ids) == 24 and len(ds.ids("val")) == 16
    image, mask = ds.load_pair(ids[0])
    assert image.mode == "RGB" and mask.shape == (image.height, image.width)
    values = set(np.unique(mask).tolist())
    assert 0 in values and 255 in values and values <= set(range(21)) | {255}


def test_reader_accepts_vocdevkit_parent(synth_root, tmp_path):
    (tmp_path / "VOCdevkit").mkdir()
    (tmp_path / "VOCdevkit" / "VOC2012").symlink_to(synth_root, target_is_directory=True)
    assert VocDataset.open(tmp_path).ids("val") == VocDataset.open(synth_root).ids("val")


def test_official_split_is_disjoint_and_as_listed(synth_root):
    split = make_split(VocDataset.open(synth_root), "official")
    assert len(split.train) == 24 and len(split.val) == 16 and split.test == []
    assert not set(split.train) & set(split.val)


def test_seed_split_proportions_on_full_voc_size():
    assert seed_counts(2913) == {"train": 2164, "val": 449, "test": 300}
    counts = seed_counts(40)
    assert sum(counts.values()) == 40 and counts["val"] == 6 and counts["test"] == 4


def test_seed_split_is_deterministic_and_disjoint(synth_root, tmp_path):
    ds = VocDataset.open(synth_root)
    a, b = make_split(ds, "seed", seed=7), make_split(ds, "seed", seed=7)
    assert a == b
    assert a != make_split(ds, "seed", seed=8)
    assert sorted(a.train + a.val + a.test) == sorted(ds.ids("trainval"))
    assert len(set(a.train) | set(a.val) | set(a.test)) == 40
    a.save(tmp_path / "split.json")
    import json

    assert Split.from_dict(json.loads((tmp_path / "split.json").read_text())) == a


def test_synth_same_seed_same_bytes(tmp_path):
    cfg = SynthConfig(images=5, size=48, seed=3)
    a, b = generate(tmp_path / "a", cfg), generate(tmp_path / "b", cfg)
    for rel in ("JPEGImages/synth_000004.jpg", "SegmentationClass/synth_000004.png",
                "ImageSets/Segmentation/train.txt"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    mask = Image.open(a / "SegmentationClass/synth_000000.png")
    assert mask.mode == "P"


def test_check_passes_on_clean_data(synth_root):
    report = check_dataset(synth_root)
    assert report.ok, report.problems
    assert report.counts == {"train": 24, "val": 16, "trainval": 40}
    assert report.class_pixels[0] > 0 and report.class_pixels[-1] > 0  # background and void


def _damage(root: Path, how: str) -> str:
    ds = VocDataset.open(root)
    victim = ds.ids("train")[2]
    if how == "missing_mask":
        ds.mask_path(victim).unlink()
        return ds.mask_path(victim).name
    if how == "size_mismatch":
        mask = Image.open(ds.mask_path(victim))
        mask.resize((mask.width + 3, mask.height)).save(ds.mask_path(victim))
        return ds.mask_path(victim).name
    if how == "bad_labels":
        mask = np.asarray(Image.open(ds.mask_path(victim))).copy()
        mask[0, 0] = 42
        out = Image.fromarray(mask, "P")
        out.putpalette(Image.open(ds.mask_path(victim)).getpalette())
        out.save(ds.mask_path(victim))
        return ds.mask_path(victim).name
    if how == "unreadable_image":
        ds.image_path(victim).write_bytes(ds.image_path(victim).read_bytes()[:200])
        return ds.image_path(victim).name
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing_mask", "size_mismatch", "bad_labels", "unreadable_image"])
def test_check_names_each_defect(synth_copy, how):
    name = _damage(synth_copy, how)
    report = check_dataset(synth_copy)
    assert not report.ok
    assert any(name in problem for problem in report.problems), report.problems


def test_split_entry_with_path_traversal_is_refused(synth_copy):
    split_file = synth_copy / "ImageSets/Segmentation/train.txt"
    split_file.write_text("../../etc/passwd\n")
    with pytest.raises(DataError, match="not a plain image id"):
        VocDataset.open(synth_copy).ids("train")


def test_missing_split_file_says_which(synth_copy):
    (synth_copy / "ImageSets/Segmentation/val.txt").unlink()
    with pytest.raises(DataError, match="val.txt"):
        VocDataset.open(synth_copy).ids("val")
