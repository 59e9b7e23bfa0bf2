"""RunCheckpoint on a toy model with scripted epoch logs: best model, patience, restore, files."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from segedge.train.callbacks import RunCheckpoint  # noqa: E402
from segedge.train.rundir import RunPaths, RunState, load_state, read_history  # noqa: E402


def _toy():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _epochs(callback, model, scores):
    callback.on_train_begin()
    for epoch, score in enumerate(scores):
        callback.on_epoch_begin(epoch)
        model.get_layer("dense").kernel.assign(np.full((4, 2), float(epoch), np.float32))
        callback.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 1.0, "val_miou": score})
        if model.stop_training:
            break
    callback.on_train_end()


def test_patience_stops_and_the_best_epoch_is_saved_and_restored(tmp_path):
    model = _toy()
    paths = RunPaths.at(tmp_path / "run")
    callback = RunCheckpoint(paths, RunState(), model, "val_miou", "max", patience=2, restore_best_weights=True)
    callback.set_model(model)
    _epochs(callback, model, [0.2, 0.5, 0.4, 0.45, 0.9])
    state = load_state(paths.root)
    assert (state.epoch, state.best_epoch, state.best, state.stopped_early) == (4, 2, 0.5, True)
    assert [row["epoch"] for row in read_history(paths.root)] == [1, 2, 3, 4]
    assert [p.name for p in paths.checkpoints.glob("*.weights.h5")] == ["epoch-0004.weights.h5"]
    assert paths.model.is_file()
    assert np.all(model.get_layer("dense").kernel.numpy() == 1.0)  # epoch 2's weights are back


def test_without_restore_the_last_weights_stay(tmp_path):
    model = _toy()
    paths = RunPaths.at(tmp_path / "run")
    callback = RunCheckpoint(paths, RunState(), model, "val_loss", "min", patience=0, restore_best_weights=False)
    callback.set_model(model)
    _epochs(callback, model, [0.1, 0.2])  # val_loss is flat: patience 0 stops at the first non-improvement
    state = load_state(paths.root)
    assert (state.epoch, state.best_epoch, state.stopped_early) == (2, 1, True)
    assert np.all(model.get_layer("dense").kernel.numpy() == 1.0)


def test_missing_monitor_names_what_was_logged(tmp_path):
    model = _toy()
    callback = RunCheckpoint(RunPaths.at(tmp_path), RunState(), model, "val_miou", "max", 1, True)
    callback.set_model(model)
    with pytest.raises(KeyError, match="val_miou"):
        callback.on_epoch_end(0, {"loss": 1.0})
