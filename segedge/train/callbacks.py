"""One callback that owns the run folder's per-epoch writes.

Keras ships EarlyStopping, ModelCheckpoint, CSVLogger and BackupAndRestore, but
each keeps its own state in memory and none survives a restart: after
``--resume`` EarlyStopping would forget its patience count, ModelCheckpoint
would overwrite the best model with a worse one, CSVLogger would duplicate rows,
and ModelCheckpoint/BackupAndRestore write in place (a kill mid-write leaves a
truncated file). Here the four jobs share one state (``RunState``) that is
checkpointed with the weights, and every file is written to a temporary name and
renamed into place.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import keras

from segedge.train.rundir import RunPaths, RunState, history_csv
from segedge.util import fileio


def _improved(value: float, best: float | None, mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def save_weights_atomically(model: keras.Model, path: Path) -> None:
    """``model.save_weights`` (model + optimizer variables) to a temp name, then rename."""
    tmp = path.with_name(fileio.temp_name(path.name))  # ends in ".weights.h5", as keras wants
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_model_atomically(model: keras.Model, path: Path) -> None:
    with fileio.atomic_path(path) as tmp:
        model.save(tmp)


PERCENT_METRICS = ("miou", "pixel_accuracy")  # the metrics' names (losses.make_metrics); val_ prefixed too


def in_percent(logs: dict | None) -> dict:
    """The logs as a person reads them: mIoU and pixel accuracy x100 under ``NAME %``, the rest as they are."""
    shown = {}
    for key, value in (logs or {}).items():
        if key.removeprefix("val_") in PERCENT_METRICS:
            shown[f"{key} %"] = 100.0 * float(value)
        else:
            shown[key] = value
    return shown


class PercentProgbar(keras.callbacks.ProgbarLogger):
    """Keras' epoch lines with mIoU and pixel accuracy in percent (``val_miou %: 41.8600``).

    The metrics themselves stay fractions (history.csv, the resume state and early stopping
    read them, as report.json and the manifest keep fractions); only what is printed changes,
    so the epoch lines and the closing summary (``val mIoU 41.86 %``) speak one unit.
    """

    def _update_progbar(self, batch, logs=None):
        super()._update_progbar(batch, in_percent(logs))

    def _finalize_progbar(self, logs):
        super()._finalize_progbar(in_percent(logs))


class RunCheckpoint(keras.callbacks.Callback):
    """Best model, early stopping, resume checkpoint and history for one run folder.

    ``inference_model`` shares its layers (and so its weights) with the trained
    model but has no optimizer or compile config: that is what ``model.keras``
    holds, so export loads it without segedge's custom losses.
    """

    def __init__(self, paths: RunPaths, state: RunState, inference_model: keras.Model, monitor: str, mode: str,
                 patience: int, restore_best_weights: bool) -> None:
        super().__init__()
        self.paths = paths
        self.state = state
        self.inference_model = inference_model
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self._epoch_start = time.perf_counter()
        self.last_logs: dict[str, float] = {}

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.last_logs = logs
        state = self.state
        number = epoch + 1
        row = {"epoch": number, **logs, "seconds": round(time.perf_counter() - self._epoch_start, 3)}
        state.rows = [r for r in state.rows if r["epoch"] < number] + [row]
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"early stopping monitors {self.monitor!r} but the epoch logged only {sorted(logs)}")
        if _improved(value, state.best, self.mode):
            state.best, state.best_epoch, state.wait = value, number, 0
            save_model_atomically(self.inference_model, self.paths.model)
        else:
            state.wait += 1
        if state.wait >= self.patience and state.best_epoch != number:
            state.stopped_early = True
            self.model.stop_training = True
        self._checkpoint(number)

    def _checkpoint(self, number: int) -> None:
        """Weights first, then the state that names them, then history; older weights last."""
        self.paths.checkpoints.mkdir(parents=True, exist_ok=True)
        weights = self.paths.weights(number)
        save_weights_atomically(self.model, weights)
        self.state.epoch, self.state.weights = number, weights.name
        fileio.write_json(self.paths.state, self.state.to_dict())
        fileio.write_text(self.paths.history, history_csv(self.state.rows))
        for old in self.paths.checkpoints.glob("epoch-*.weights.h5"):
            if old.name != weights.name:
                old.unlink(missing_ok=True)

    def on_train_end(self, logs=None) -> None:
        if self.restore_best_weights and self.state.best_epoch and self.state.best_epoch != self.state.epoch:
            if self.paths.model.is_file():
                self.inference_model.load_weights(self.paths.model)
