"""Whole runs: the run folder contract, loss going down, resume, the CLI, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures_train import tiny_config
from typer.testing import CliRunner

from segedge.cli import app
from segedge.contract.preprocess import PreprocessSpec
from segedge.data import Split
from segedge.train.config import TrainConfig
from segedge.train.rundir import RunPaths, load_state, read_history
from segedge.util.errors import OutputError

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow


class Interrupted(RuntimeError):
    pass


def test_trained_run_follows_the_contract(trained_run: Path, synth_root: Path):
    paths = RunPaths.at(trained_run)
    for path in (paths.model, paths.config, paths.split, paths.history, paths.state):
        assert path.is_file(), path
    config = json.loads(paths.config.read_text())
    assert config["data_root"] == str(synth_root.absolute())
    assert (config["num_outputs"], config["void_handling"], config["split_kind"], config["preset"]) == (
        21, "ignore", "official", "default")
    assert PreprocessSpec.from_dict(config["preprocess"]) == PreprocessSpec(64, 64, "mobilenet")
    assert TrainConfig.from_dict(config).to_dict() == config  # round trip of what was written
    split = Split.from_dict(json.loads(paths.split.read_text()))
    assert split.counts() == {"train": 24, "val": 16, "test": 0}
    assert [name.name for name in paths.checkpoints.glob("*.weights.h5")] == ["epoch-0002.weights.h5"]
    assert not list(trained_run.glob(".segedge-tmp-*"))


def test_two_epochs_lower_the_loss(trained_run: Path):
    history = read_history(trained_run)
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "val_loss", "val_miou", "val_pixel_accuracy", "seconds"} <= set(history[0])
    assert history[1]["loss"] < history[0]["loss"]
    assert all(0.0 <= row["val_miou"] <= 1.0 for row in history)


def test_model_keras_is_inference_only_and_loads_without_segedge_objects(trained_run: Path):
    import keras

    model = keras.saving.load_model(trained_run / "model.keras", safe_mode=True)
    assert tuple(model.outputs[0].shape) == (None, 64, 64, 21)
    assert getattr(model, "optimizer", None) is None  # no optimizer state, no compile config


def test_existing_run_is_refused_without_overwrite(trained_run: Path, synth_root: Path):
    with pytest.raises(OutputError, match="--resume"):
        from segedge.train.fit import train

        train(tiny_config(synth_root, trained_run))


def test_resume_continues_an_interrupted_run_at_the_next_epoch(synth_root: Path, tmp_path: Path):
    import keras

    from segedge.train.fit import train

    class StopAtSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise Interrupted("killed")

    config = tiny_config(synth_root, tmp_path / "run", epochs=3, steps_per_epoch=1, validation_steps=1)
    with pytest.raises(Interrupted):
        train(config, callbacks=[StopAtSecondEpoch()], verbose=0)
    state = load_state(tmp_path / "run")
    assert state.epoch == 1 and state.weights == "epoch-0001.weights.h5"
    assert [row["epoch"] for row in read_history(tmp_path / "run")] == [1]

    resumed = train(config, resume=True, verbose=0)
    assert (resumed.initial_epoch, resumed.epochs_completed) == (1, 3)
    assert [row["epoch"] for row in read_history(tmp_path / "run")] == [1, 2, 3]
    assert int(resumed.model.optimizer.iterations.numpy()) == 3  # Adam's step counter came back too
    assert load_state(tmp_path / "run").epoch == 3


def test_cli_seed_preset_run_and_resume_of_a_finished_run(synth_root: Path, tmp_path: Path):
    out = tmp_path / "seed_run"
    args = ["train", str(synth_root), "--out", str(out), "--preset", "seed", "--image-size", "32",
            "--batch-size", "8", "--epochs", "1", "--steps-per-epoch", "1", "--validation-steps", "1",
            "--run-eagerly"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best epoch 1" in result.output and "split seed: 30 train / 6 val / 4 test" in result.output
    lines = result.output.splitlines()
    where = {key: next(i for i, line in enumerate(lines) if key in line)
             for key in ("up to 1 epoch,", "split seed:", "val_miou %:", "best epoch 1")}
    # the split is known before training and said then (it came after the run), one unit for mIoU throughout
    assert where["up to 1 epoch,"] < where["split seed:"] < where["val_miou %:"] < where["best epoch 1"]
    assert "% (6 val images at 32x32 model size)" in lines[where["best epoch 1"]]
    assert "after 1 epoch in" in lines[where["best epoch 1"]]
    config = json.loads((out / "config.json").read_text())
    assert (config["num_outputs"], config["void_handling"], config["preprocess"]["scaling"]) == (22, "class", "unit")

    again = CliRunner().invoke(app, ["train", "--resume", str(out)])
    assert again.exit_code == 0, again.output
    assert "nothing to resume" in again.output

    changed = CliRunner().invoke(app, ["train", "--resume", str(out), "--batch-size", "4"])
    assert changed.exit_code == 2 and "--batch-size" in changed.output


def test_cli_imagenet_offline_fails_before_touching_the_run(synth_root: Path, tmp_path: Path, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nothing listens on: connection refused, like no network
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("SEGEDGE_WEIGHTS_URL", f"http://127.0.0.1:{closed}/")
    monkeypatch.setenv("SEGEDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(synth_root), "--out", str(out), "--encoder-weights", "imagenet"])
    assert result.exit_code == 3
    assert "--encoder-weights" in result.output and "mobilenet_v2_weights" in result.output
    assert not out.exists()


def test_overwrite_replaces_only_the_run_files(trained_run: Path, synth_root: Path, tmp_path: Path):
    copy = Path(shutil.copytree(trained_run, tmp_path / "run"))
    (copy / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["train", str(synth_root), "--out", str(copy), "--image-size", "100"])
    assert result.exit_code == 2 and "100" in result.output  # bad option: nothing touched
    assert (copy / "model.keras").is_file()
    result = CliRunner().invoke(app, ["train", str(synth_root), "--out", str(copy)])
    assert result.exit_code == 8 and "--overwrite" in result.output
