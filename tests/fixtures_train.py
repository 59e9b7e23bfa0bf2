"""Session fixtures that train tiny models (owned by the train stage).

``trained_run`` is a real ``segedge train`` run folder (default recipe, 64 px,
2 epochs on ``synth_root``): model.keras, config.json, split.json,
history.csv, checkpoints/. Treat it as read-only; copy it to change it.
Steps run eagerly: at this size tracing the training graph costs more
(~20-45 s on 2 cores) than the dozen eager steps the run needs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TRAIN_SIZE = 64
TRAIN_EPOCHS = 2


def tiny_config(root: Path, out: Path, **overrides):
    """A TrainConfig small enough for a test: 64 px, batch 8, 2 epochs, eager steps."""
    from segedge.train.config import make_config

    values = {"image_size": TRAIN_SIZE, "batch_size": 8, "epochs": TRAIN_EPOCHS, "run_eagerly": True}
    values.update(overrides)
    preset = values.pop("preset", "default")
    return make_config(root, out, preset, **values)


@pytest.fixture(scope="session")
def trained_run(synth_root: Path, tmp_path_factory) -> Path:
    """A RUN folder trained 2 epochs at 64 px on ``synth_root`` (24 train / 16 val images, batch 16)."""
    pytest.importorskip("tensorflow", reason="trains a model: needs TensorFlow (pip install 'segedge[train]')")
    from segedge.train.fit import train

    out = tmp_path_factory.mktemp("train") / "run"
    train(tiny_config(synth_root, out, batch_size=16), verbose=0)
    return out
