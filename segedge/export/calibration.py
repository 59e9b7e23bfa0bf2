"""Calibration images: one source, two consumers (TFLite's representative dataset, ORT's reader).

Images come from the run's **training** split, are read upright by the one
reader (``VocDataset.load_image`` = ``segedge.data.images.read_upright``: EXIF
orientation, 16-bit, alpha, palette) and go through exactly the inference
pre-processing (``segedge.contract.preprocess``): calibration on anything else
(random noise, another scaling) quantizes the wrong value ranges. Held-out
reference ids are excluded, so verification never scores on calibration data.
No TensorFlow or onnxruntime import here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from segedge.contract.preprocess import PreprocessSpec, resize_uint8, scale_pixels
from segedge.data.dataset import Dataset
from segedge.util.errors import ConfigError, ExportError
from segedge.util.progress import stderr, track

CALIBRATION_SPLIT = "train"
CALIB_OPTION = "--calib-images"  # the export option that asks for the count (named in the truncation note)


@dataclass(frozen=True)
class CalibrationSource:
    """N training images at model size (uint8, pre-scaling), fed as float32 (1,H,W,3) batches."""

    ids: list[str]
    pixels: np.ndarray  # (N, H, W, 3) uint8: resize_uint8 output
    spec: PreprocessSpec
    split: str = CALIBRATION_SPLIT

    def __post_init__(self) -> None:
        if not self.ids or len(self.pixels) == 0:
            raise ExportError(
                "the calibration source is empty: int8 quantization needs real training images; "
                "check the run's split.json (train ids) and --data"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, description: str | None = None) -> Iterator[np.ndarray]:
        """float32 NHWC batches of one image, as the exported graph takes them (``spec.input``).

        A pixel-input graph (``spec.pixels_in``) gets the pixels as float32, and the first
        batch holds one pixel 0 and one 255 (``anchor_range``), so the calibrated input
        range is exactly [0, 255] (int8 input scale 1, the identity on 0..255) whatever
        the calibration images hold. A scaled graph gets ``scale_pixels`` output.
        """
        items: Sequence[np.ndarray] | Iterator[np.ndarray] = self.pixels
        if description:
            items = track(self.pixels, description, total=len(self.pixels))
        for index, pixels in enumerate(items):
            if not self.spec.pixels_in:
                yield scale_pixels(pixels[None], self.spec)
                continue
            batch = pixels[None].astype(np.float32)
            yield anchor_range(batch) if index == 0 else batch

    def summary(self) -> dict:
        return {"count": len(self.ids), "split": self.split, "ids": list(self.ids)}


def anchor_range(batch: np.ndarray) -> np.ndarray:
    """``batch`` with its first pixel black (0) and its last white (255): min-max calibration then sees 0..255.

    Two pixels of one image: the other layers' calibrated ranges move by what two
    pixels of one of N images can move them (nothing measurable), while the input's
    range no longer depends on what the calibration set happens to hold.
    """
    anchored = batch.copy()
    anchored[0, 0, 0, :] = 0.0
    anchored[0, -1, -1, :] = 255.0
    return anchored


def pick_ids(train_ids: Sequence[str], count: int, exclude: Sequence[str] = ()) -> list[str]:
    """Up to ``count`` training ids, spread evenly over the list (deterministic), never an excluded id."""
    if count < 1:
        raise ConfigError(f"{CALIB_OPTION} must be at least 1, got {count}")
    excluded = set(exclude)
    pool = [i for i in train_ids if i not in excluded]
    if len(pool) <= count:
        return pool
    positions = np.linspace(0, len(pool) - 1, count).round().astype(int)
    return [pool[p] for p in positions]


def load_calibration(dataset: Dataset, train_ids: Sequence[str], count: int, spec: PreprocessSpec,
                     exclude: Sequence[str] = ()) -> CalibrationSource:
    """Read and pre-process the calibration images once; both quantizers reuse them."""
    ids = pick_ids(train_ids, count, exclude)
    if len(ids) < count:  # say so: a silent cut makes "--calib 200" in a log mean 24 images
        held = len(train_ids) - len(ids)
        held_out = f" ({held} held-out reference image(s) excluded)" if held else ""
        stderr.print(f"note: {CALIB_OPTION} {count}: the {CALIBRATION_SPLIT} split has {len(ids)} usable "
                     f"images{held_out}; calibrating on {len(ids)}", markup=False, highlight=False, soft_wrap=True)
    pixels = [resize_uint8(dataset.load_image(i), spec)[0]
              for i in track(ids, "loading calibration images", total=len(ids))]
    stacked = np.stack(pixels) if pixels else np.zeros((0, spec.height, spec.width, 3), np.uint8)
    return CalibrationSource(ids, stacked, spec)


def representative_dataset(source: CalibrationSource) -> Callable[[], Iterator[list[np.ndarray]]]:
    """``TFLiteConverter.representative_dataset``: a callable returning a fresh generator."""

    def generate() -> Iterator[list[np.ndarray]]:
        for batch in source.batches("calibrating int8 (TFLite)"):
            yield [batch]

    return generate


class OrtCalibrationReader:
    """``onnxruntime.quantization.CalibrationDataReader`` (duck-typed: ``get_next``/``rewind``)."""

    def __init__(self, source: CalibrationSource, input_name: str) -> None:
        self.source, self.input_name = source, input_name
        self._iter: Iterator[np.ndarray] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self.source.batches("calibrating int8 (ONNX)")
        batch = next(self._iter, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self._iter = None
