"""TrainConfig, presets, the run folder rules and option errors: no TensorFlow needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from segedge.contract.preprocess import PreprocessSpec
from segedge.train.config import PRESETS, TrainConfig, make_config
from segedge.train.model import IMAGENET_WEIGHTS_FILE, resolve_encoder_weights
from segedge.train.rundir import RunPaths, check_new_run, history_csv
from segedge.util.errors import ConfigError, DataError, OutputError


def test_seed_preset_is_the_write_up(tmp_path):
    config = make_config(tmp_path / "voc", tmp_path / "run", "seed")
    assert (config.split, config.scaling, config.void_handling, config.augment) == (
        "seed", "unit", "class", "flip-copies")
    assert (config.batch_size, config.epochs, config.monitor, config.patience) == (32, 30, "val_loss", 5)
    assert config.num_outputs == 22
    assert config.preprocess_spec().scale == pytest.approx(1 / 255)


def test_default_preset_ignores_void_and_scales_for_mobilenet(tmp_path):
    config = make_config(tmp_path / "voc", tmp_path / "run")
    assert (config.split, config.scaling, config.void_handling, config.augment) == (
        "auto", "mobilenet", "ignore", "hflip")
    assert config.num_outputs == 21
    assert config.monitor == "val_miou" and config.restore_best_weights
    assert (config.preprocess_spec().scale, config.preprocess_spec().offset) == (pytest.approx(1 / 127.5), -1.0)


def test_overrides_apply_and_none_keeps_the_preset(tmp_path):
    config = make_config(tmp_path / "voc", tmp_path / "run", "seed", epochs=3, batch_size=None, scaling="mobilenet")
    assert (config.epochs, config.batch_size, config.scaling, config.preset) == (3, 32, "mobilenet", "seed")
    assert Path(config.data_root).is_absolute() and Path(config.out).is_absolute()


def test_freeze_is_automatic_only_with_pretrained_weights(tmp_path):
    assert not make_config(tmp_path, tmp_path / "r").freeze
    assert make_config(tmp_path, tmp_path / "r", encoder_weights="/w.h5").freeze
    assert not make_config(tmp_path, tmp_path / "r", encoder_weights="/w.h5", freeze_encoder=False).freeze
    assert make_config(tmp_path, tmp_path / "r", freeze_encoder=True).freeze


@pytest.mark.parametrize(("change", "named"), [
    ({"image_size": 100}, "100"),
    ({"image_size": 16}, "16"),
    ({"batch_size": 0}, "--batch-size"),
    ({"learning_rate": -0.1}, "-0.1"),
    ({"epochs": 2.5}, "--epochs"),
    ({"scaling": "weird"}, "weird"),
    ({"void_handling": "drop"}, "drop"),
    ({"augment": "rotate"}, "rotate"),
    ({"monitor": "val_acc"}, "val_acc"),
    ({"bn_momentum": 1.0}, "--bn-momentum"),
])
def test_bad_values_are_config_errors_naming_the_value(tmp_path, change, named):
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, tmp_path / "run", **change)
    assert named in caught.value.message


def test_unknown_preset_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="fancy"):
        make_config(tmp_path, tmp_path / "run", "fancy")


def test_config_json_round_trip_and_contract_keys(tmp_path):
    config = make_config(tmp_path / "voc", tmp_path / "run", "seed", image_size=96, seed=7, split="seed")
    data = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(data) == config
    for key in ("preprocess", "num_outputs", "void_handling", "data_root", "split_kind", "seed", "preset",
                "image_size"):
        assert key in data, key
    assert (data["num_outputs"], data["void_handling"], data["split_kind"], data["seed"]) == (22, "class", "seed", 7)
    assert PreprocessSpec.from_dict(data["preprocess"]) == PreprocessSpec(96, 96, "unit")


def test_config_from_dict_refuses_unknown_keys(tmp_path):
    data = make_config(tmp_path, tmp_path / "run").to_dict()
    data["warp_speed"] = 9
    with pytest.raises(ConfigError, match="warp_speed"):
        TrainConfig.from_dict(data)


def test_imagenet_offline_error_names_the_url_the_file_and_the_path_option(tmp_path, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nothing listens on: connection refused, like no network
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("SEGEDGE_WEIGHTS_URL", f"http://127.0.0.1:{closed}/w")
    monkeypatch.setenv("SEGEDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(DataError) as caught:
        resolve_encoder_weights("imagenet")
    message = caught.value.message
    assert str(tmp_path / "keras" / "models" / IMAGENET_WEIGHTS_FILE) in message
    assert f"http://127.0.0.1:{closed}/w/{IMAGENET_WEIGHTS_FILE}" in message
    assert "--encoder-weights PATH" in message and "\n" not in message
    assert not (tmp_path / "keras" / "models" / IMAGENET_WEIGHTS_FILE).exists()


def test_imagenet_uses_the_cached_file_when_present(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = tmp_path / "models" / IMAGENET_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"h5")
    assert resolve_encoder_weights("imagenet") == str(cached)
    assert resolve_encoder_weights("none") is None


def test_new_run_refuses_a_folder_that_holds_anything(tmp_path):
    paths = RunPaths.at(tmp_path / "run")
    assert check_new_run(paths, overwrite=False).state == "new"  # missing: fine
    paths.root.mkdir()
    assert check_new_run(paths, overwrite=False).state == "empty"  # empty: fine
    (paths.root / "notes.txt").write_text("mine")
    for overwrite in (False, True):  # a folder segedge did not mark is never a run to replace
        with pytest.raises(OutputError, match=r"holds 1 file not written by segedge \(notes.txt\)"):
            check_new_run(paths, overwrite=overwrite)
    paths.config.write_text("{}")
    paths.checkpoints.mkdir()
    (paths.root / ".segedge.json").write_text(json.dumps({"kind": "run", "files": ["config.json", "checkpoints"]}))
    with pytest.raises(OutputError, match="--resume"):
        check_new_run(paths, overwrite=False)
    claim = check_new_run(paths, overwrite=True)
    claim.prepare(paths.entry_names())
    assert sorted(p.name for p in paths.root.iterdir()) == [".segedge.json", "notes.txt"]  # only run files go


def test_history_csv_puts_the_contract_columns_first():
    text = history_csv([{"epoch": 1, "seconds": 2.0, "val_miou": 0.5, "loss": 1.0, "val_loss": 1.5, "zeta": 3}])
    assert text.splitlines()[0] == "epoch,loss,val_loss,val_miou,seconds,zeta"


def test_train_modules_import_without_tensorflow():
    """config, run folder and the fit entry point are importable on an install without TF."""
    code = (
        "import importlib.abc, sys\n"
        "class B(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'tensorflow', 'keras'}: raise ImportError(name)\n"
        "sys.meta_path.insert(0, B())\n"
        "import segedge.train, segedge.train.config, segedge.train.rundir, segedge.train.fit\n"
        "import segedge.train.pipeline, segedge.commands.train\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_presets_cover_every_recipe_field():
    assert set(PRESETS["seed"]) == set(PRESETS["default"])
