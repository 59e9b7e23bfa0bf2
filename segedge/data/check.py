"""Validate a dataset folder (VOC or pairs layout): every pair readable, same size, labels in its classes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from segedge.contract.classes import ClassSpec
from segedge.data.dataset import open_dataset
from segedge.data.images import outside_classes, read_upright_pair
from segedge.util.errors import DataError
from segedge.util.progress import track

KNOWN_SPLITS = ("train", "val", "trainval", "test", "train_aug")
PAIRS_SPLITS = ("train", "val", "test")
SHOWN_FILES = 3  # files named per out-of-range value


@dataclass
class StrayLabel:
    """A mask value that is neither a declared class nor void: how many pixels, and in which files."""

    value: int
    pixels: int = 0
    files: list[str] = field(default_factory=list)
    file_count: int = 0

    def line(self, classes: ClassSpec, classes_file: str) -> str:
        shown = ", ".join(self.files[:SHOWN_FILES]) + (f" and {self.file_count - SHOWN_FILES} more"
                                                       if self.file_count > SHOWN_FILES else "")
        return (f"label value {self.value} is outside the {classes.num_classes} declared classes "
                f"(0..{classes.num_classes - 1}, void {classes.void}; {classes_file}): {self.pixels} pixels in "
                f"{self.file_count} file(s): {shown}")


@dataclass
class CheckReport:
    root: str
    layout: str = "voc"
    classes: ClassSpec = field(default_factory=ClassSpec.voc)
    classes_file: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    class_pixels: list[int] = field(default_factory=list)  # one per class, then void
    stray: dict[int, StrayLabel] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def stray_lines(self) -> list[str]:
        return [self.stray[v].line(self.classes, self.classes_file) for v in sorted(self.stray)]


def _listed_ids(dataset, report: CheckReport) -> list[str]:
    """Every id any split names (VOC), or every image (pairs), with the split counts recorded."""
    listed: dict[str, None] = {}
    splits = KNOWN_SPLITS if dataset.layout == "voc" else PAIRS_SPLITS
    for split in splits:
        if not dataset.has_split(split):
            continue
        try:
            ids = dataset.ids(split)
        except DataError as exc:
            report.problems.append(exc.message)
            continue
        report.counts[split] = len(ids)
        listed.update(dict.fromkeys(ids))
    if dataset.layout == "pairs":
        listed.update(dict.fromkeys(dataset.stems()))
        report.problems.extend(f"{path}: mask has no image with stem {path.stem!r} in images/"
                               for path in dataset.orphan_masks())
        if not dataset.has_masks:
            report.problems.append(f"{dataset.root / 'masks'}: not found; training and scoring need a mask per image")
            return []
    elif not (("train" in report.counts and "val" in report.counts) or "trainval" in report.counts):
        if not report.problems:
            report.problems.append(
                f"{dataset.split_file('train')}: no usable split files (need train.txt and val.txt, or trainval.txt)"
            )
    return list(listed)


def check_dataset(root: str | os.PathLike[str]) -> CheckReport:
    """Read every image/mask pair; collect one line per defect and every label value outside the classes."""
    dataset = open_dataset(root)
    classes = dataset.classes
    classes_file = str(dataset.classes_file) if dataset.classes_file.exists() else "no classes.json: VOC's 21"
    report = CheckReport(root=str(dataset.root), layout=dataset.layout, classes=classes, classes_file=classes_file)
    listed = _listed_ids(dataset, report)
    n = classes.num_classes
    histogram = np.zeros(n + 1, dtype=np.int64)
    for sample_id in track(listed, "Checking pairs", total=len(listed)):
        mask_path = dataset.mask_path(sample_id)
        try:
            _, values = read_upright_pair(dataset.image_path(sample_id), mask_path, classes, strict=False)
        except DataError as exc:
            report.problems.append(exc.message)
            continue
        counts = np.bincount(values.ravel(), minlength=256)
        histogram[:n] += counts[:n]
        histogram[n] += counts[classes.void]
        for value in np.flatnonzero(counts * outside_classes(np.arange(256, dtype=np.uint8), classes)):
            stray = report.stray.setdefault(int(value), StrayLabel(int(value)))
            stray.pixels += int(counts[value])
            stray.file_count += 1
            if len(stray.files) < SHOWN_FILES:
                stray.files.append(str(mask_path))
    report.class_pixels = [int(v) for v in histogram]
    report.problems.extend(report.stray_lines())
    return report
