"""Train/val/test splits: VOC's official lists, the seed write-up's pooled split, or train_aug.

The seed write-up pools VOC's train and val (1464 + 1449 = 2913 ids) and cuts
them 2164 / 449 / 300. On a dataset of another size the same proportions hold.

``train_aug`` trains on ``ImageSets/Segmentation/train_aug.txt`` (VOC train + SBD
train + SBD val, minus VOC val: 10,582 ids, written by ``segedge data fetch sbd``)
and validates on VOC's own val.txt, as the VOC segmentation literature does.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from enum import Enum

import numpy as np

from segedge.data.dataset import Dataset
from segedge.util import fileio
from segedge.util.errors import ConfigError, DataError

SEED_COUNTS = {"train": 2164, "val": 449, "test": 300}
SEED_TOTAL = sum(SEED_COUNTS.values())


class SplitKind(str, Enum):
    official = "official"
    seed = "seed"
    train_aug = "train_aug"


@dataclass(frozen=True)
class Split:
    """Which ids a run trains, validates and tests on; saved beside its outputs."""

    kind: str
    seed: int
    train: list[str]
    val: list[str]
    test: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Split:
        return cls(**{k: data[k] for k in ("kind", "seed", "train", "val", "test")})

    def save(self, path: str | os.PathLike[str]) -> None:
        fileio.write_json(path, self.to_dict())

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def seed_counts(total: int) -> dict[str, int]:
    """The write-up's 2164/449/300 proportions scaled to ``total`` ids."""
    if total < 3:
        raise DataError(f"the seed split needs at least 3 images, the dataset has {total}")
    val = max(1, round(total * SEED_COUNTS["val"] / SEED_TOTAL))
    test = max(1, round(total * SEED_COUNTS["test"] / SEED_TOTAL))
    return {"train": total - val - test, "val": val, "test": test}


def pooled_ids(dataset: Dataset) -> list[str]:
    """train + val ids (or trainval when that is all there is), de-duplicated, sorted."""
    if dataset.has_split("train") and dataset.has_split("val"):
        ids = dataset.ids("train") + dataset.ids("val")
    else:
        ids = dataset.ids("trainval")
    return sorted(set(ids))


def _check_disjoint(train: list[str], val: list[str], message: str) -> None:
    """A validation id that is also trained on inflates every score: refuse it (``message`` names the file)."""
    overlap = sorted(set(train) & set(val))
    if overlap:
        raise DataError(message.format(n=len(overlap), first=overlap[0]))


def make_split(dataset: Dataset, kind: SplitKind | str = SplitKind.official, seed: int = 0) -> Split:
    kind = SplitKind(kind) if not isinstance(kind, SplitKind) else kind
    if kind is SplitKind.official:
        train, val = dataset.ids("train"), dataset.ids("val")
        _check_disjoint(train, val, f"{dataset.split_file('val')}: {{n}} ids also in train.txt, e.g. {{first!r}}")
        return Split(kind=kind.value, seed=seed, train=train, val=val, test=[])
    if kind is SplitKind.seed:
        ids = pooled_ids(dataset)
        counts = seed_counts(len(ids))
        order = np.random.default_rng(seed).permutation(len(ids))
        shuffled = [ids[i] for i in order]
        n_train, n_val = counts["train"], counts["val"]
        return Split(
            kind=kind.value,
            seed=seed,
            train=shuffled[:n_train],
            val=shuffled[n_train : n_train + n_val],
            test=shuffled[n_train + n_val :],
        )
    if kind is SplitKind.train_aug:
        if not dataset.has_split("train_aug"):
            raise DataError(
                f"{dataset.split_file('train_aug')}: not found; --split train_aug needs the SBD masks: "
                f"run 'segedge data fetch sbd {dataset.root}'"
            )
        train, val = dataset.ids("train_aug"), dataset.ids("val")
        _check_disjoint(train, val, f"{dataset.split_file('train_aug')}: {{n}} ids are also in val.txt, e.g. "
                                    f"{{first!r}}; re-run 'segedge data fetch sbd {dataset.root} --overwrite'")
        return Split(kind=kind.value, seed=seed, train=train, val=val, test=[])
    raise ConfigError(f"unknown split {kind!r}; choose one of {[k.value for k in SplitKind]}")
