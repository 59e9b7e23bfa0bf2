"""Read a training RUN folder (``model.keras``, ``config.json``, ``split.json``) with clear errors.

The run folder is the contract between ``segedge train`` and ``segedge
export``; everything export needs to reproduce the training-time input
pipeline (pre-processing, data root, split) is read from it, never guessed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segedge.contract.classes import ClassSpec
from segedge.contract.preprocess import PreprocessSpec
from segedge.data.dataset import Dataset, open_dataset
from segedge.data.pairs import DEFAULT_VAL_FRACTION
from segedge.data.splits import Split
from segedge.train.rundir import RunPaths, class_difference
from segedge.util import fileio
from segedge.util.errors import ConfigError, DataError, ModelError, user_path

VOID_HANDLING = ("ignore", "class")


@dataclass(frozen=True)
class RunFolder:
    path: Path
    config: dict[str, Any]
    split: Split
    spec: PreprocessSpec

    @property
    def files(self) -> RunPaths:
        return RunPaths(self.path)

    @property
    def model_path(self) -> Path:
        return self.files.model

    @property
    def num_outputs(self) -> int:
        return int(self.config.get("num_outputs", 21))

    @property
    def void_handling(self) -> str:
        return str(self.config.get("void_handling", "ignore"))

    @property
    def classes(self) -> ClassSpec:
        """``RUN/classes.json`` (what train recorded); a run from before it existed trained on VOC's 21."""
        path = self.files.classes
        return ClassSpec.load(path, error=ModelError) if path.exists() else ClassSpec.voc()

    def dataset(self, data_root: str | os.PathLike[str] | None = None) -> Dataset:
        """The dataset the run trained on, or ``data_root`` when the data has moved (``--data``).

        Its classes must be the run's (names and count): the bundle's labels come from the run.
        """
        root = data_root if data_root is not None else self.config.get("data_root")
        if not root:
            raise ConfigError(f"{self.files.config}: no data_root recorded; pass --data PATH")
        try:
            dataset = open_dataset(root, float(self.config.get("val_fraction", DEFAULT_VAL_FRACTION)))
        except DataError as exc:
            hint = "" if data_root is not None else " (the path recorded in config.json; pass --data PATH if it moved)"
            raise DataError(exc.message + hint) from exc
        why = class_difference(self.classes, dataset.classes)
        if why:
            source = dataset.classes_file if dataset.classes_file.exists() else f"{dataset.root} (VOC's 21)"
            raise DataError(f"{source}: the dataset's classes differ from the run's {self.files.classes} ({why}); "
                            "pass --data with the dataset the run trained on")
        return dataset


def _read_json(path: Path) -> dict:
    return fileio.read_json_object(
        path, missing=f"not found; is {path.parent} a run folder written by 'segedge train'?",
        fix="re-run 'segedge train' or restore the file")


def open_run(run_dir: str | os.PathLike[str]) -> RunFolder:
    """Validate the run folder's files (not the model itself: that needs TensorFlow)."""
    path = user_path(run_dir)  # as typed, '..' collapsed: every message below names it
    if path.is_file():
        raise ModelError(
            f"{path}: is a file; expected a run folder written by 'segedge train' (holding model.keras and "
            f"config.json), e.g. 'segedge export {path.parent}', or a .keras model file (with --data, --classes "
            "and --scaling)")
    if not path.is_dir():
        raise ModelError(f"{path}: run folder not found; expected a folder written by 'segedge train' "
                         "(holding model.keras and config.json)")
    files = RunPaths(path)  # the layout segedge train writes (not made absolute: messages show the path given)
    config = _read_json(files.config)
    try:
        split = Split.from_dict(_read_json(files.split))
        spec = PreprocessSpec.from_dict(config["preprocess"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: config.json or split.json is missing a field ({exc})") from exc
    except ConfigError as exc:
        raise ModelError(f"{files.config}: {exc.message}") from exc
    run = RunFolder(path, config, split, spec)
    if run.void_handling not in VOID_HANDLING:
        raise ModelError(f"{files.config}: void_handling {run.void_handling!r} is not one of {VOID_HANDLING}")
    expected = len(run.classes) + (1 if run.void_handling == "class" else 0)
    if run.num_outputs != expected:
        source = files.classes if files.classes.exists() else "VOC (no classes.json)"
        raise ModelError(f"{files.config}: num_outputs={run.num_outputs} but {source} "
                         f"has {len(run.classes)} classes (void_handling {run.void_handling!r}: {expected} outputs); "
                         "the run's files do not belong together")
    if not files.model.is_file():
        raise ModelError(f"{files.model}: model file not found; train first or point at the right run")
    return run


def load_keras_model(path: Path):
    """``model.keras`` with ``safe_mode=True`` (no arbitrary code); any failure names the file."""
    import keras

    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: model file is empty (0 bytes); re-train or re-copy it")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # zipfile, h5py, json and Keras raise many unrelated types
        if "safe_mode" in str(exc):
            raise ModelError(f"{path}: refused: the model holds Python code (e.g. a Lambda layer) and segedge "
                             "loads .keras files in Keras' safe mode, so it never runs code from a model file; "
                             "rebuild the model without Lambda layers") from exc
        raise ModelError(f"{path}: cannot load the Keras model ({type(exc).__name__}: {exc}); "
                         "the file is truncated, corrupt or not a .keras archive") from exc


def check_model_matches(model, run: RunFolder) -> None:
    """The model's input size and output channels must be what config.json says (else wrong run)."""
    shape = tuple(model.inputs[0].shape[1:])
    expected = (run.spec.height, run.spec.width, 3)
    if shape != expected:
        raise ModelError(
            f"{run.model_path}: model input is {shape} but config.json pre-processing gives {expected}; "
            "the model and its config.json do not belong together"
        )
    channels = model.outputs[0].shape[-1]
    if channels != run.num_outputs:
        raise ModelError(
            f"{run.model_path}: model has {channels} output channels but config.json says "
            f"num_outputs={run.num_outputs}"
        )
