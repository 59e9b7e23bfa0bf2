"""Shared fixtures: generated VOC-layout data (VOC itself cannot be downloaded here)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from segedge.data.synth import SynthConfig, generate

pytest_plugins = ["fixtures_train", "fixtures_export"]

# Tests never reach the internet: a stray '--encoder-weights imagenet' is sent to a closed local port.
os.environ.setdefault("SEGEDGE_WEIGHTS_URL", "http://127.0.0.1:9/")


# Five vivid, solid-bodied classes: the tiny fixtures' 20-step models learn them (all 20 need the demo's epochs).
FIXTURE_CLASSES = (3, 7, 14, 16, 18)  # bird, car, motorbike, pottedplant, sofa


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small read-only-by-convention synthetic dataset shared by many tests."""
    config = SynthConfig(images=40, size=64, seed=1, classes=FIXTURE_CLASSES)
    return generate(tmp_path_factory.mktemp("synth") / "voc", config)


@pytest.fixture
def synth_copy(synth_root: Path, tmp_path: Path) -> Path:
    """A private copy a test may damage."""
    return Path(shutil.copytree(synth_root, tmp_path / "voc"))
