"""What ``segedge train`` says: every mIoU names its basis and unit, counts read as words, SIGTERM explains itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import segedge
from segedge.contract.classes import ClassSpec
from segedge.util.errors import user_path

REPO = Path(segedge.__file__).resolve().parents[1]
PROCESS_TIMEOUT_S = 300  # one tiny training process, start to finish, on a busy 2-core machine


def _result(tmp_path: Path, **config):
    from segedge.train.config import make_config
    from segedge.train.fit import TrainResult

    return TrainResult(run_dir=tmp_path, config=make_config(tmp_path, tmp_path / "run", **config),
                       split_counts={"train": 2164, "val": 449, "test": 300}, initial_epoch=0, epochs_completed=1,
                       best_epoch=1, best_value=0.4186, stopped_early=False, seconds=3.0,
                       history=[{"epoch": 1, "val_miou": 0.4186, "val_loss": 0.9}])


def test_train_summary_names_the_images_and_size_of_its_val_miou(tmp_path):
    pytest.importorskip("tensorflow")
    line = _result(tmp_path, image_size=96).summary()
    assert "val mIoU 41.86 % (449 val images at 96x96 model size)" in line
    assert "after 1 epoch in" in line  # not "1 epoch(s)"
    capped = _result(tmp_path, image_size="96x128", batch_size=16, validation_steps=2).summary()
    assert "(32 val images at 96x128 model size)" in capped  # --validation-steps 2 x batch 16 scored


def test_epoch_lines_print_miou_in_percent_and_keep_the_logs_fractions(capsys):
    pytest.importorskip("tensorflow")
    from segedge.train.callbacks import PercentProgbar

    bar = PercentProgbar()
    bar.set_params({"verbose": 2, "epochs": 1, "steps": 1})
    logs = {"loss": 0.5, "miou": 0.3812, "pixel_accuracy": 0.9, "val_loss": 0.7, "val_miou": 0.4186}
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(0, dict(logs))
    bar.on_epoch_end(0, logs)
    line = capsys.readouterr().out
    assert "val_miou %: 41.8600" in line and "miou %: 38.1200" in line and "pixel_accuracy %: 90.0000" in line
    assert "loss: 0.5000" in line and "val_loss: 0.7000" in line
    assert logs["val_miou"] == 0.4186  # early stopping, history.csv and the resume state read fractions


def test_class_mismatch_says_which_side_is_the_run():
    from segedge.train.rundir import class_difference

    run, dataset = ClassSpec.default(3), ClassSpec.default(2)
    assert class_difference(run, dataset) == "the run trained on 3 classes, the dataset names 2"
    renamed = ClassSpec(("background", "cat", "dog"), run.palette)
    assert class_difference(run, renamed) == "class 1 is 'class1' in the run, 'cat' in the dataset"
    assert class_difference(run, ClassSpec.default(3)) == ""


def test_export_class_mismatch_line_names_the_run_and_the_dataset(synth_root: Path, tmp_path: Path):
    """export's "(2 classes vs 3)" did not say which was the run's."""
    from segedge.contract.preprocess import PreprocessSpec
    from segedge.data.splits import make_split
    from segedge.data.voc import VocDataset
    from segedge.export.run import open_run
    from segedge.util import fileio
    from segedge.util.errors import DataError

    run = tmp_path / "run"
    run.mkdir()
    fileio.write_json(run / "config.json", {"preprocess": PreprocessSpec(64, 64, "mobilenet").to_dict(),
                                            "num_outputs": 3, "void_handling": "ignore",
                                            "data_root": str(synth_root)})
    make_split(VocDataset.open(synth_root), "official", 0).save(run / "split.json")
    fileio.write_json(run / "classes.json", ClassSpec.default(3).to_dict())
    (run / "model.keras").write_bytes(b"not opened here")
    with pytest.raises(DataError) as caught:
        open_run(run).dataset()
    message = caught.value.message
    assert "the run trained on 3 classes, the dataset names 21" in message
    assert str(run / "classes.json") in message and "vs" not in message


def test_user_paths_lose_dot_dot_detours_but_never_change_the_file(tmp_path: Path):
    assert user_path("flow/../own/./data/") == Path("own/data")
    assert user_path("~/x/../runs") == Path.home() / "runs"
    real = tmp_path / "a" / "b"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    # link/.. is a/, not tmp_path: collapsing it would name another folder, so it stays as typed
    assert user_path(tmp_path / "link" / ".." / "c") == tmp_path / "link" / ".." / "c"
    assert user_path(tmp_path / "a" / "b" / ".." / "c") == tmp_path / "a" / "c"


@pytest.mark.slow
def test_sigterm_keeps_the_finished_epochs_and_says_how_to_resume(synth_root: Path, tmp_path: Path):
    """SIGTERM (kill, a scheduler's time limit) ended train silently with 143; now it reports like Ctrl-C."""
    pytest.importorskip("tensorflow", reason="trains a model: needs TensorFlow (pip install 'segedge[train]')")
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    command = [sys.executable, "-c", "from segedge.cli import main; main()", "train", str(synth_root),
               "--out", str(run), "--image-size", "32", "--batch-size", "8", "--epochs", "1000",
               "--steps-per-epoch", "1", "--validation-steps", "1", "--patience", "1000", "--run-eagerly"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        state = run / "checkpoints" / "state.json"
        while not state.is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None, process.communicate()
        assert state.is_file(), "no epoch finished before the deadline"
        process.send_signal(15)
        out, err = process.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, err
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last.startswith("terminated (SIGTERM) after ") and "finished epoch" in last
    assert last.endswith(f"continue with: segedge train --resume {run}")
    from segedge.train.rundir import load_state

    assert load_state(run).epoch >= 1 and (run / "model.keras").is_file()  # what it said it kept is there
