"""tf.data input pipeline fed by the ``segedge.data`` reader.

Why the reader (PIL) decodes and resizes instead of ``tf.io.decode_*`` +
``tf.image.resize``:

* ``tf.io.decode_png`` expands a palette PNG (how VOC stores masks) to RGB
  colours, not class indices, and TF cannot read the CMYK / 16-bit / RGBA files
  the reader already converts. One reader means one set of accepted files.
* ``segedge.contract.preprocess.resize_uint8`` is the exact resize the exporter's
  reference data and the edge use at inference, so training sees the very same
  pixels (no bilinear-vs-antialiased drift between TF and PIL).
* Every pair is read once, before the first step: a missing or broken file is a
  ``DataError`` naming it, not a TensorFlow stack trace in the middle of epoch 7.

The decoded, resized uint8 arrays are the cache (in memory when they fit the
budget; otherwise each epoch re-reads the files after the up-front check).
Everything after that is TensorFlow: per-epoch shuffles and flips are
stateless functions of ``(seed, epoch)``, so a resumed run sees the same
batches as an uninterrupted one, and ``--seed`` makes a run repeatable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from segedge.contract.classes import ClassSpec
from segedge.contract.labels import NUM_CLASSES, VOID
from segedge.contract.preprocess import PreprocessSpec, resize_mask, resize_uint8
from segedge.data import Dataset, Split, SplitKind, make_split, open_dataset
from segedge.train.config import Augment, CacheMode, SplitChoice, TrainConfig, VoidHandling
from segedge.util.errors import DataError
from segedge.util.progress import track

FLIP_COPIES = 3  # original, horizontally flipped, vertically flipped


def resolve_split_kind(dataset: Dataset, choice: str) -> str:
    """``auto`` -> official when train.txt and val.txt exist, otherwise the seed split."""
    if choice != SplitChoice.auto.value:
        return choice
    if dataset.has_split("train") and dataset.has_split("val"):
        return SplitKind.official.value
    return SplitKind.seed.value


def build_split(dataset: Dataset, config: TrainConfig) -> Split:
    split = make_split(dataset, resolve_split_kind(dataset, config.split), seed=config.seed)
    for name in ("train", "val"):
        if not getattr(split, name):
            raise DataError(f"{dataset.root}: the {split.kind} split has no {name} images; add more images")
    return split


def load_resized(dataset: Dataset, sample_id: str, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """One pair at model size: uint8 HxWx3 image (PIL bilinear) and uint8 HxW mask (nearest, 255 kept).

    A letterbox spec pads the image with the pixel that scales to 0 and the mask with void (not scored).

    ``load_pair`` reads both upright (``read_upright_pair``: the image's EXIF turn applied to its mask too).
    """
    image, mask = dataset.load_pair(sample_id)
    pixels, _ = resize_uint8(image, spec)
    return pixels, resize_mask(mask, spec)


def _with_hint(exc: DataError) -> DataError:
    return DataError(f"{exc.message} (run 'segedge data check' to list every problem)")


@dataclass
class SampleSource:
    """The pairs of one split at model size: held in memory, or re-read from disk on demand."""

    dataset: Dataset
    ids: list[str]
    spec: PreprocessSpec
    images: np.ndarray | None = None
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def cached(self) -> bool:
        return self.images is not None

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A batch (uint8 images, uint8 masks) by position; called from ``tf.numpy_function``."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.images is not None and self.masks is not None:
            return self.images[indices], self.masks[indices]
        pairs = [load_resized(self.dataset, self.ids[int(i)], self.spec) for i in indices]
        size = (self.spec.height, self.spec.width)
        images = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, *size, 3), np.uint8)
        masks = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, *size), np.uint8)
        return images, masks


def cache_bytes(count: int, spec: PreprocessSpec) -> int:
    return count * spec.height * spec.width * 4  # 3 image bytes + 1 mask byte per pixel


def cache_fits(count: int, spec: PreprocessSpec, budget_mb: int) -> bool:
    """Within the budget and within half of the memory available right now."""
    need = cache_bytes(count, spec)
    limit = budget_mb * 2**20
    try:
        limit = min(limit, os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2)
    except (ValueError, OSError, AttributeError):
        pass
    return need <= limit


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def load_source(dataset: Dataset, ids: Sequence[str], spec: PreprocessSpec, cache: str, budget_mb: int,
                what: str) -> SampleSource:
    """Read (and check) every pair of ``ids`` now; keep the resized arrays when the cache allows.

    PIL releases the GIL while decoding and resizing, so a thread pool helps.
    """
    ids = list(ids)
    keep = cache == CacheMode.memory.value or (
        cache == CacheMode.auto.value and cache_fits(len(ids), spec, budget_mb)
    )
    source = SampleSource(dataset, ids, spec)
    if keep:
        source.images = np.empty((len(ids), spec.height, spec.width, 3), dtype=np.uint8)
        source.masks = np.empty((len(ids), spec.height, spec.width), dtype=np.uint8)
    with ThreadPoolExecutor(_workers()) as pool:
        pairs = pool.map(lambda sample_id: load_resized(dataset, sample_id, spec), ids)
        try:
            for index, (pixels, mask) in enumerate(track(pairs, f"Reading {what} images", total=len(ids))):
                if keep:
                    source.images[index] = pixels
                    source.masks[index] = mask
        except DataError as exc:
            raise _with_hint(exc) from exc
    return source


def example_count(source_size: int, augment: str) -> int:
    """Training examples per epoch: 3x with the seed preset's flipped copies."""
    return source_size * (FLIP_COPIES if augment == Augment.flip_copies.value else 1)


def steps_for(examples: int, batch_size: int, limit: int | None = None) -> int:
    steps = math.ceil(examples / batch_size)
    return min(steps, limit) if limit else steps


def encode_labels(masks, void_handling: str, num_classes: int = NUM_CLASSES):
    """uint8 masks -> int32 labels: void stays 255 (ignored) or becomes class ``num_classes`` (the seed preset)."""
    import tensorflow as tf

    labels = tf.cast(masks, tf.int32)
    if void_handling == VoidHandling.klass.value:
        labels = tf.where(labels == VOID, tf.constant(num_classes, tf.int32), labels)
    return labels


def _flip(batch, flags, axis: int):
    import tensorflow as tf

    shape = tf.concat([tf.shape(flags), tf.ones([tf.rank(batch) - 1], tf.int32)], axis=0)
    return tf.where(tf.reshape(flags, shape), tf.reverse(batch, [axis]), batch)


def _batch_mapper(source: SampleSource, config: TrainConfig):
    """(indices, hflip, vflip) -> (scaled float32 images, int32 labels), one whole batch at a time."""
    import tensorflow as tf

    spec = source.spec
    scale, offset = (np.asarray(spec.channel_scale, np.float32), np.asarray(spec.channel_offset, np.float32))
    if not spec.per_channel:
        scale, offset = scale[0], offset[0]  # one constant: the numbers scale_pixels computes

    def apply(indices, hflip, vflip):
        images, masks = tf.numpy_function(source.gather, [indices], [tf.uint8, tf.uint8], stateful=False)
        images.set_shape([None, spec.height, spec.width, 3])
        masks.set_shape([None, spec.height, spec.width])
        images, masks = _flip(images, hflip, 2), _flip(masks, hflip, 2)
        images, masks = _flip(images, vflip, 1), _flip(masks, vflip, 1)
        pixels = tf.cast(images, tf.float32) * scale + offset
        return pixels, encode_labels(masks, config.void_handling, config.num_classes)

    return apply


def _epoch_batches(epoch, n: int, config: TrainConfig, steps: int):
    """One epoch's index batches and flip flags, a pure function of (seed, epoch)."""
    import tensorflow as tf

    total = example_count(n, config.augment)
    seed = tf.stack([tf.constant(config.seed, tf.int64), tf.cast(epoch, tf.int64)])
    order = tf.random.experimental.stateless_shuffle(tf.range(total, dtype=tf.int64), seed=seed)
    if config.augment == Augment.flip_copies.value:
        variant = order // n
        index, hflip, vflip = order % n, tf.equal(variant, 1), tf.equal(variant, 2)
    elif config.augment == Augment.hflip.value:
        coin = tf.random.stateless_uniform([total], seed=seed + tf.constant([1, 0], tf.int64))
        index, hflip, vflip = order, coin < 0.5, tf.zeros([total], tf.bool)
    else:
        index, hflip, vflip = order, tf.zeros([total], tf.bool), tf.zeros([total], tf.bool)
    return tf.data.Dataset.from_tensor_slices((index, hflip, vflip)).batch(config.batch_size).take(steps)


def train_dataset(source: SampleSource, config: TrainConfig, initial_epoch: int = 0):
    """Batches for epochs ``initial_epoch .. epochs-1`` back to back; pass ``steps_per_epoch`` to fit."""
    import tensorflow as tf

    steps = train_steps(source, config)
    n = len(source)
    epochs = tf.data.Dataset.range(initial_epoch, max(config.epochs, initial_epoch + 1))
    batches = epochs.flat_map(lambda epoch: _epoch_batches(epoch, n, config, steps))
    mapped = batches.map(_batch_mapper(source, config), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return mapped.prefetch(tf.data.AUTOTUNE)


def train_steps(source: SampleSource, config: TrainConfig) -> int:
    return steps_for(example_count(len(source), config.augment), config.batch_size, config.steps_per_epoch)


def val_dataset(source: SampleSource, config: TrainConfig):
    """Every validation image once, in order, no augmentation."""
    import tensorflow as tf

    steps = steps_for(len(source), config.batch_size, config.validation_steps)
    n = len(source)
    flags = tf.zeros([n], tf.bool)
    batches = tf.data.Dataset.from_tensor_slices((tf.range(n, dtype=tf.int64), flags, flags))
    batches = batches.batch(config.batch_size).take(steps)
    mapped = batches.map(_batch_mapper(source, config), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return mapped.prefetch(tf.data.AUTOTUNE)


@dataclass
class TrainingData:
    split: Split
    train: SampleSource
    val: SampleSource
    classes: ClassSpec  # the dataset's (classes.json, else VOC's 21): the model head's size
    classes_file: str = ""  # where they came from, for messages


def load_training_data(config: TrainConfig, split: Split | None = None) -> TrainingData:
    """Open the dataset (either layout), make (or take) the split, and read every train/val pair up front."""
    dataset = open_dataset(config.data_root, config.val_fraction)
    if not dataset.has_masks:
        raise DataError(f"{dataset.root}: has images but no masks; training needs a class-index mask per image")
    split = split or build_split(dataset, config)
    spec = config.preprocess_spec()
    train = load_source(dataset, split.train, spec, config.cache, config.cache_budget_mb, "train")
    val = load_source(dataset, split.val, spec, config.cache, config.cache_budget_mb, "val")
    source = dataset.classes_file if dataset.classes_file.exists() else f"{dataset.root} (no classes.json: VOC's 21)"
    return TrainingData(split, train, val, dataset.classes, str(source))
