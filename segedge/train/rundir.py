"""The run folder (``RUN/``): its paths, the resume state, and the refuse/overwrite rules.

Layout (the contract in docs/design.md)::

    RUN/.segedge.json            marker: kind "run" (segedge.util.outputs), written at run start
    RUN/model.keras              best epoch, inference-only (no optimizer, no compile config)
    RUN/config.json              TrainConfig.to_dict()
    RUN/split.json               segedge.data.Split
    RUN/classes.json             the dataset's ClassSpec (names, palette, void): export labels the bundle with it
    RUN/history.csv              one row per finished epoch (epoch is 1-based)
    RUN/checkpoints/state.json   last finished epoch, early-stopping state, history rows
    RUN/checkpoints/epoch-NNNN.weights.h5   model + optimizer weights after epoch NNNN

``state.json`` names its weights file and is written after it, both by rename,
so a run killed at any moment resumes from a consistent pair and loses at most
the epoch in progress. No TensorFlow here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segedge.contract.classes import CLASSES_FILE, ClassSpec
from segedge.data import Split
from segedge.train.config import TrainConfig, absolute_path
from segedge.util import fileio, outputs
from segedge.util.errors import ConfigError, DataError, ModelError

STATE_VERSION = 1
FIRST_COLUMNS = ("epoch", "loss", "val_loss", "val_miou", "pixel_accuracy", "val_pixel_accuracy", "miou")


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> RunPaths:
        return cls(absolute_path(root))

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def split(self) -> Path:
        return self.root / "split.json"

    @property
    def classes(self) -> Path:
        return self.root / CLASSES_FILE

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def state(self) -> Path:
        return self.checkpoints / "state.json"

    def weights(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch-{epoch:04d}.weights.h5"

    def run_entries(self) -> list[Path]:
        return [self.model, self.config, self.split, self.classes, self.history, self.checkpoints]

    def entry_names(self) -> list[str]:
        """What the run marker owns: ``--overwrite`` removes these and nothing else."""
        return [entry.name for entry in self.run_entries()]


@dataclass
class RunState:
    """What a resumed run needs beyond the weights: the epoch counter and early stopping."""

    epoch: int = 0                 # epochs finished
    weights: str | None = None     # file name under checkpoints/
    best: float | None = None      # best monitored value so far
    best_epoch: int = 0            # 1-based; 0 = none yet
    wait: int = 0                  # epochs since the best
    stopped_early: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"state_version": STATE_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        return cls(**{k: data[k] for k in ("epoch", "weights", "best", "best_epoch", "wait", "stopped_early",
                                           "rows")})


def _read_json(path: Path, what: str) -> dict[str, Any]:
    return fileio.read_json_object(path, missing=f"{what} not found; is {path.parent} a segedge run folder?",
                                   fix="restore the file, or start the run again with --overwrite")


def load_config(run: str | Path) -> TrainConfig:
    """The config a run was started with (``--resume`` continues with it)."""
    paths = RunPaths.at(run)
    if not paths.root.is_dir():  # ModelError (exit 4), as export reports a missing run folder
        what = "is a file, not a run folder" if paths.root.is_file() else "run folder not found"
        raise ModelError(f"{paths.root}: {what}; --resume takes a folder written by segedge train")
    data = _read_json(paths.config, "run config")
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, ConfigError) as exc:
        raise ModelError(f"{paths.config}: not a valid run config ({exc})") from exc


def load_split(run: str | Path) -> Split:
    path = RunPaths.at(run).split
    try:
        return Split.from_dict(_read_json(path, "split"))
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a valid split file ({exc})") from exc


def load_classes(run: str | Path) -> ClassSpec:
    """The classes a run trained on: ``RUN/classes.json``; a run from before it existed trained on VOC's 21."""
    path = RunPaths.at(run).classes
    return ClassSpec.load(path, error=ModelError) if path.exists() else ClassSpec.voc()


def class_difference(run: ClassSpec, dataset: ClassSpec) -> str:
    """How the dataset's classes differ from the run's, naming which side is which; "" when they agree.

    ``ClassSpec.differs`` says "2 classes vs 3", which leaves the reader to guess which is the run.
    """
    if not run.differs(dataset):
        return ""
    if len(run) != len(dataset):
        return f"the run trained on {len(run)} classes, the dataset names {len(dataset)}"
    i = next((i for i, (a, b) in enumerate(zip(run.names, dataset.names, strict=True)) if a != b), None)
    if i is None:
        return f"the run's: {run.differs(dataset)}"
    return f"class {i} is {run.names[i]!r} in the run, {dataset.names[i]!r} in the dataset"


def check_resumed_classes(run: str | Path, classes: ClassSpec, source: str) -> None:
    """A resumed run must see the classes it started with: its head has one output per class."""
    why = class_difference(load_classes(run), classes)
    if why:
        raise DataError(f"{source}: the dataset's classes differ from those run {RunPaths.at(run).root} started "
                        f"with ({RunPaths.at(run).classes}): {why}; resume on the same dataset or start a new run")


def load_state(run: str | Path) -> RunState | None:
    """The last consistent checkpoint, or None when no epoch has finished yet."""
    paths = RunPaths.at(run)
    if not paths.state.is_file():
        return None
    try:
        state = RunState.from_dict(_read_json(paths.state, "resume state"))
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{paths.state}: not a valid resume state ({exc})") from exc
    if state.weights and not (paths.checkpoints / state.weights).is_file():
        raise ModelError(
            f"{paths.checkpoints / state.weights}: checkpoint named by {paths.state} is missing; "
            "the run cannot be resumed, start it again with --overwrite"
        )
    return state


def check_new_run(paths: RunPaths, overwrite: bool) -> outputs.Claim:
    """May a new run start in ``paths.root``? (``segedge.util.outputs.claim``: new, empty, or a marked run with
    --overwrite.) Writes nothing; ``Claim.prepare`` then clears the old run's own files and marks the folder."""
    return outputs.claim(paths.root, "run", overwrite,
                         hint=f"continue it with --resume {paths.root}, or ")


def mark_resumed(paths: RunPaths) -> None:
    """A run written before runs were marked (it has config.json): mark it, so --overwrite may replace it."""
    if outputs.read_marker(paths.root) is None:
        outputs.write_marker(paths.root, "run", paths.entry_names())


def history_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text with ``epoch, loss, val_loss, val_miou`` first, then the other columns sorted."""
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    columns = [c for c in FIRST_COLUMNS if c in names] + sorted(c for c in names if c not in FIRST_COLUMNS)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    return out.getvalue()


def read_history(run: str | Path) -> list[dict[str, float]]:
    """``history.csv`` as a list of dicts of floats (``epoch`` as int)."""
    path = RunPaths.at(run).history
    if not path.is_file():
        raise ModelError(f"{path}: history not found")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""} for row in rows]
