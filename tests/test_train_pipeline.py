"""Input pipeline: splits, the seed's 3x flipped copies, void labels, parity with inference, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_train import tiny_config

from segedge.contract.preprocess import resize_mask, resize_uint8, scale_pixels
from segedge.data import VocDataset
from segedge.data.splits import seed_counts
from segedge.util.errors import DataError

pytest.importorskip("tensorflow")

from segedge.train.pipeline import (  # noqa: E402
    build_split,
    load_training_data,
    train_dataset,
    train_steps,
    val_dataset,
)

SIZE = 32


def _epoch(dataset, steps):
    images, labels = [], []
    for x, y in dataset.take(steps):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_seed_split_counts_follow_the_write_up_proportions(synth_root, tmp_path):
    config = tiny_config(synth_root, tmp_path / "run", preset="seed")
    split = build_split(VocDataset.open(synth_root), config)
    assert split.kind == "seed"
    assert split.counts() == seed_counts(40) == {"train": 30, "val": 6, "test": 4}
    assert len(set(split.train) | set(split.val) | set(split.test)) == 40


def test_default_split_is_official_when_the_lists_exist(synth_root, tmp_path):
    split = build_split(VocDataset.open(synth_root), tiny_config(synth_root, tmp_path / "run"))
    assert split.kind == "official" and split.counts()["train"] == 24


def test_seed_preset_epoch_is_three_times_the_training_set(synth_root, tmp_path):
    config = tiny_config(synth_root, tmp_path / "run", preset="seed", image_size=SIZE, batch_size=8)
    data = load_training_data(config)
    steps = train_steps(data.train, config)
    assert steps == 12  # ceil(3 * 30 / 8)
    images, labels = _epoch(train_dataset(data.train, config), steps)
    assert images.shape == (90, SIZE, SIZE, 3) and labels.shape == (90, SIZE, SIZE)
    assert 0.0 <= images.min() and images.max() <= 1.0  # [0, 1] scaling
    assert 21 in labels and 255 not in labels  # void became class 21
    originals = data.train.images.astype(np.float32) / 255
    variants = {"original": originals, "h": originals[:, :, ::-1], "v": originals[:, ::-1]}
    for name, reference in variants.items():
        found = sum(any(np.allclose(image, ref, atol=1e-6) for image in images) for ref in reference)
        assert found == 30, name  # every image once as itself, once h-flipped, once v-flipped


def test_default_recipe_keeps_void_and_flips_some_images(synth_root, tmp_path):
    config = tiny_config(synth_root, tmp_path / "run", image_size=SIZE, batch_size=8)
    data = load_training_data(config)
    images, labels = _epoch(train_dataset(data.train, config), train_steps(data.train, config))
    assert images.shape[0] == 24 and -1.0 <= images.min() and images.max() <= 1.0
    assert 255 in labels and 21 not in labels
    originals = data.train.images.astype(np.float32) / 127.5 - 1
    flipped = sum(any(np.allclose(image, ref[:, ::-1], atol=1e-6) for image in images) for ref in originals)
    assert 0 < flipped < 24


def test_epochs_are_a_function_of_seed_and_epoch_so_resume_sees_the_same_batches(synth_root, tmp_path):
    config = tiny_config(synth_root, tmp_path / "run", image_size=SIZE, batch_size=8, epochs=3)
    data = load_training_data(config)
    steps = train_steps(data.train, config)
    from_start = _epoch(train_dataset(data.train, config), 3 * steps)[0]
    resumed = _epoch(train_dataset(data.train, config, initial_epoch=1), 2 * steps)[0]
    assert np.array_equal(from_start[24:], resumed)
    assert not np.array_equal(from_start[:24], from_start[24:48])  # reshuffled each epoch


def test_training_pixels_are_the_inference_preprocessing(synth_root, tmp_path):
    """One source of truth: the edge's resize, scaled as the Keras model takes it, is the training input."""
    config = tiny_config(synth_root, tmp_path / "run", image_size=SIZE, cache="none")
    data = load_training_data(config)
    assert not data.val.cached
    x, y = next(iter(val_dataset(data.val, config)))
    dataset = VocDataset.open(synth_root)
    image, mask = dataset.load_pair(data.split.val[0])
    pixels, _ = resize_uint8(image, config.preprocess_spec())
    expected = scale_pixels(pixels, config.preprocess_spec())
    assert np.array_equal(x.numpy()[0], expected)
    assert np.array_equal(y.numpy()[0], resize_mask(mask, config.preprocess_spec()))


def test_missing_image_is_a_data_error_before_training(synth_copy, tmp_path):
    config = tiny_config(synth_copy, tmp_path / "run", image_size=SIZE)
    victim = VocDataset.open(synth_copy).image_path("synth_000003")
    victim.unlink()
    with pytest.raises(DataError) as caught:
        load_training_data(config)
    assert str(victim) in caught.value.message and "segedge data check" in caught.value.message


def test_corrupt_mask_is_a_data_error_naming_it(synth_copy, tmp_path):
    config = tiny_config(synth_copy, tmp_path / "run", image_size=SIZE, cache="none")
    victim = VocDataset.open(synth_copy).mask_path("synth_000030")  # a val image
    victim.write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="synth_000030.png"):
        load_training_data(config)
