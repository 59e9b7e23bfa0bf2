"""Validate a VOC-layout folder: every listed pair readable, same size, legal labels."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from segedge.data.voc import VocDataset
from segedge.errors import DataError
from segedge.labels import NUM_CLASSES, VOID
from segedge.progress import track

KNOWN_SPLITS = ("train", "val", "trainval", "test", "train_aug")


@dataclass
class CheckReport:
    root: str
    counts: dict[str, int] = field(default_factory=dict)
    class_pixels: list[int] = field(default_factory=lambda: [0] * (NUM_CLASSES + 1))
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(root: str | os.PathLike[str]) -> CheckReport:
    """Read every image/mask pair named by any split file; collect one line per defect."""
    dataset = VocDataset.open(root)
    report = CheckReport(root=str(dataset.root))
    listed: dict[str, None] = {}
    for split in KNOWN_SPLITS:
        if not dataset.split_file(split).exists():
            continue
        try:
            ids = dataset.ids(split)
        except DataError as exc:
            report.problems.append(exc.message)
            continue
        report.counts[split] = len(ids)
        listed.update(dict.fromkeys(ids))
    if not (("train" in report.counts and "val" in report.counts) or "trainval" in report.counts):
        if not report.problems:
            report.problems.append(
                f"{dataset.split_file('train')}: no usable split files (need train.txt and val.txt, or trainval.txt)"
            )
    histogram = np.zeros(NUM_CLASSES + 1, dtype=np.int64)
    for sample_id in track(list(listed), "Checking pairs", total=len(listed)):
        try:
            _, mask = dataset.load_pair(sample_id)
        except DataError as exc:
            report.problems.append(exc.message)
            continue
        counts = np.bincount(mask.ravel(), minlength=256)
        histogram[:NUM_CLASSES] += counts[:NUM_CLASSES]
        histogram[NUM_CLASSES] += counts[VOID]
    report.class_pixels = [int(v) for v in histogram]
    return report
