"""Session fixtures that build run folders and export bundles (owned by the export stage).

``tiny_run`` is a RUN folder per the contract in docs/design.md (64 px U-Net,
fit for 20 steps so that it predicts object classes); ``tiny_bundle`` is that run
exported to all six targets. Edge and bench tests reuse ``tiny_bundle``:
treat it as read-only. ``micro_run`` holds a three-layer model in the same
layout: it converts in about a second, for tests of export mechanics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segedge.contract.classes import ClassSpec
from segedge.contract.preprocess import PreprocessSpec, resize_mask, resize_uint8, scale_pixels
from segedge.data.splits import make_split
from segedge.data.voc import VocDataset
from segedge.util import fileio

TINY_SIZE = 64
TINY_CALIB = 8
TINY_EVAL = 6
# 10 x 2 eager steps (~40 s): val mIoU ~0.39 on synth_root, predicting real object classes. At 2 x 2
# steps (0.04) the argmax is near-constant, so int8 can lose no mIoU and quant tests have no gap to close.
TINY_FIT_EPOCHS = 10
NEEDS_TF = "builds a Keras model: needs TensorFlow (pip install 'segedge[train]'); edge-only installs skip it"


def require_tensorflow() -> None:
    """Skip (not error) a test whose fixture must build a model where TensorFlow is not installed."""
    pytest.importorskip("tensorflow", reason=NEEDS_TF)


def write_run(root: Path, run_dir: Path, model, image_size: int = TINY_SIZE, seed: int = 0) -> Path:
    """RUN/{model.keras, config.json, split.json, classes.json} as ``segedge train`` writes them."""
    spec = PreprocessSpec(image_size, image_size, "mobilenet")
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.keras")
    fileio.write_json(run_dir / "config.json", {
        "preprocess": spec.to_dict(), "num_outputs": int(model.outputs[0].shape[-1]), "void_handling": "ignore",
        "data_root": str(Path(root).resolve()), "split_kind": "official", "seed": seed,
        "preset": "default", "image_size": image_size,
    })
    make_split(VocDataset.open(root), "official", seed).save(run_dir / "split.json")
    # as segedge train records them: the head's size in classes (VOC's 21, or background, class1, ...)
    fileio.write_json(run_dir / "classes.json", ClassSpec.default(int(model.outputs[0].shape[-1])).to_dict())
    return run_dir


def fit_briefly(model, root: Path, image_size: int, epochs: int = 2, seed: int = 0) -> None:
    """A few eager steps on 16 training images so the argmax is not one constant class.

    Eager, because tracing the training graph of the U-Net costs ~50 s here
    and an eager step ~2 s.
    """
    import keras

    spec = PreprocessSpec(image_size, image_size, "mobilenet")
    dataset = VocDataset.open(root)
    images, masks = [], []
    for sample_id in make_split(dataset, "official", seed).train[:16]:
        image, mask = dataset.load_pair(sample_id)
        images.append(scale_pixels(resize_uint8(image, spec)[0], spec))
        masks.append(resize_mask(mask, spec))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255))
    model.fit(np.stack(images), np.stack(masks).astype(np.int32), batch_size=8, epochs=epochs, verbose=0)


def make_run(root: Path, run_dir: Path, image_size: int = TINY_SIZE, fit_epochs: int = TINY_FIT_EPOCHS,
             seed: int = 0) -> Path:
    """A U-Net run folder (``build_unet``), fit for ``fit_epochs`` x 2 steps."""
    import keras

    from segedge.train.model import build_unet

    keras.utils.set_random_seed(seed)
    model = build_unet(image_size, 21)
    if fit_epochs:
        fit_briefly(model, root, image_size, fit_epochs, seed)
    return write_run(root, run_dir, model, image_size, seed)


def micro_model(image_size: int = TINY_SIZE, classes: int = 21, seed: int = 0):
    """Conv/BN/ReLU down, transposed conv up: the U-Net's op types in a model that converts in ~1 s."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    logits = keras.layers.Conv2DTranspose(classes, 3, strides=2, padding="same", name="logits")(x)
    return keras.Model(inputs, logits, name="micro")


@pytest.fixture(scope="session")
def micro_run(synth_root: Path, tmp_path_factory) -> Path:
    """A 64 px RUN folder holding ``micro_model`` (random weights); treat as read-only."""
    require_tensorflow()
    return write_run(synth_root, tmp_path_factory.mktemp("export_micro") / "run", micro_model())


@pytest.fixture(scope="session")
def micro_bundle(micro_run: Path, tmp_path_factory) -> Path:
    """``micro_run`` exported to TFLite fp32/int8 and ONNX fp32 (a few seconds); read-only by convention."""
    from segedge.contract.targets import parse_targets
    from segedge.export.bundle import export_bundle

    out = tmp_path_factory.mktemp("micro_bundle") / "bundle"
    export_bundle(micro_run, out, parse_targets("fp32,int8,onnx"), calib=2, eval_count=2)
    return out


@pytest.fixture(scope="session")
def tiny_run(synth_root: Path, tmp_path_factory) -> Path:
    """A 64 px U-Net RUN folder on ``synth_root`` (briefly fit, config.json, split.json)."""
    require_tensorflow()
    return make_run(synth_root, tmp_path_factory.mktemp("export") / "run")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run: Path, tmp_path_factory) -> Path:
    """``tiny_run`` exported to all six targets (calib 8, eval 6); read-only by convention."""
    from segedge.contract.targets import parse_targets
    from segedge.export.bundle import export_bundle

    out = tmp_path_factory.mktemp("export_bundle") / "bundle"
    export_bundle(tiny_run, out, parse_targets("all"), calib=TINY_CALIB, eval_count=TINY_EVAL)
    return out
