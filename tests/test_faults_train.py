"""Training killed with SIGKILL mid-epoch, then ``segedge train --resume``: the run completes and at
most the epoch in progress is lost.

A real ``segedge train`` process (32 px, 2 eager steps per epoch, 3 epochs on
the session's synthetic data) is killed with ``kill -9`` once epoch 1 is
checkpointed and epoch 2 has started. No Python handler runs on SIGKILL, so
this is the same as a power cut or the OOM killer. (The export counterpart is
``test_killed_export_leaves_previous_bundle_and_next_run_cleans_up`` in
``tests/test_export_mechanics.py``.)
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from segedge.train.rundir import RunPaths, load_state, read_history
from segedge.util import fileio

pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow

EPOCHS = 3
TRAIN_ARGS = ["--image-size", "32", "--batch-size", "4", "--epochs", str(EPOCHS), "--steps-per-epoch", "2",
              "--validation-steps", "1", "--run-eagerly"]
CLI = [sys.executable, "-c", "from segedge.cli import main; main()"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "SEGEDGE_DEBUG": ""}


def _lines(proc: subprocess.Popen) -> queue.Queue:
    """The process's output, line by line, without blocking the test on a read."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _kill_during_epoch_2(proc: subprocess.Popen, run: Path, timeout: float = 240) -> list[str]:
    """SIGKILL once ``Epoch 2/N`` is printed (epoch 1 checkpointed) and a step of epoch 2 is under way."""
    lines, seen = _lines(proc), []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=1))
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if seen[-1].startswith(f"Epoch 2/{EPOCHS}"):
            time.sleep(0.5)  # inside the first training step of epoch 2 (a step takes seconds here)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            return seen
    proc.kill()
    pytest.fail("training never reached epoch 2:\n" + "".join(seen))


def test_sigkill_mid_epoch_then_resume_completes_losing_at_most_that_epoch(synth_root: Path, tmp_path: Path):
    run = tmp_path / "run"
    proc = subprocess.Popen([*CLI, "train", str(synth_root), "--out", str(run), *TRAIN_ARGS], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = _kill_during_epoch_2(proc, run)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "".join(seen)

    # What the kill left: epoch 1 complete and consistent; epoch 2 (in progress) is all that is lost.
    state = load_state(run)
    assert state is not None and state.epoch == 1, "".join(seen)
    assert (RunPaths.at(run).checkpoints / state.weights).is_file()
    assert [row["epoch"] for row in read_history(run)] == [1]
    assert (run / "model.keras").is_file()
    # A kill in the middle of a write leaves a temp file like this one; the resumed run must remove it.
    (RunPaths.at(run).checkpoints / f"{fileio.TMP_PREFIX}epoch-0002.weights.h5").write_bytes(b"half")

    resumed = subprocess.run([*CLI, "train", "--resume", str(run)], env=ENV, capture_output=True, text=True,
                             timeout=300)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    assert "Traceback" not in output
    assert "resuming" in output and f"Epoch 2/{EPOCHS}" in output
    assert "Epoch 1/" not in output  # epoch 1 was not trained again

    history = read_history(run)
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))  # contiguous 1..N, no gap, no repeat
    final = load_state(run)
    assert final.epoch == EPOCHS and final.weights == f"epoch-{EPOCHS:04d}.weights.h5"
    assert sorted(p.name for p in RunPaths.at(run).checkpoints.iterdir()) == ["epoch-0003.weights.h5", "state.json"]
    assert not [p for p in run.rglob(f"{fileio.TMP_PREFIX}*")], "temporary files left behind"
