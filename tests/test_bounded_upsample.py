"""The full-size mask in bands: the same mask whatever the band size, and no full-size float planes."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import segedge.contract.upsample as upsample
import segedge.contract.upsample_blocks as upsample_blocks
from segedge.contract.preprocess import Placement
from segedge.contract.runtime import TensorSpec, dequantize
from segedge.contract.upsample import full_size_mask, resize_logits, upsampled_argmax

WHOLE = 1 << 40  # a band larger than any output here: one band, the unbanded mask
WAYS = {"by rows": 1, "flat": 1 << 30}  # ROWS_WAY_FROM: every band mixed row by row, or every band flat


def smooth_logits(shape: tuple[int, int, int], seed: int, step: float = 0.0) -> np.ndarray:
    """Class fields that vary slowly (few boundaries, as a trained model's) plus noise; ``step`` > 0 rounds
    them to a coarse grid (as int8 dequantized logits are): many exact ties, the lower class must win them."""
    rng = np.random.default_rng(seed)
    height, width, classes = shape
    coarse = rng.normal(0.0, 2.0, (3, 3, classes))
    ys, xs = np.linspace(0, 2, height)[:, None], np.linspace(0, 2, width)[None, :]
    field = sum(coarse[i, j] * np.exp(-((ys - i) ** 2 + (xs - j) ** 2))[..., None]
                for i in range(3) for j in range(3))
    logits = (field + rng.normal(0.0, 0.3, shape)).astype(np.float32)
    return (np.round(logits / step) * step).astype(np.float32) if step else logits


CASES = [  # (crop shape, output size, tie step): odd sizes, large and small enlargements, 1:1 on one axis
    ((12, 16, 5), (61, 47), 0.0),
    ((9, 9, 21), (500, 375), 0.25),
    ((7, 11, 4), (11, 30), 0.5),
    ((24, 20, 3), (20, 24), 0.0),
    ((13, 10, 21), (257, 331), 0.5),
    ((5, 6, 7), (203, 151), 0.0),
]


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize(("shape", "size", "step"), CASES)
def test_every_band_size_gives_the_unbanded_mask(shape, size, step, way, monkeypatch):
    """One row per band, a band cutting through a tap block's rows, a few blocks per band: the same pixels as
    one band for the whole image, on both ways of mixing a band (ties included: coarse-grid logits)."""
    logits = smooth_logits(shape, sum(shape) + size[0], step)
    noisy = np.random.default_rng(size[1]).normal(0.0, 1.0, shape).astype(np.float32)
    for values in (logits, noisy):
        whole = upsampled_argmax(values, size, band_pixels=WHOLE)
        monkeypatch.setattr(upsample_blocks, "ROWS_WAY_FROM", WAYS[way])
        rows_per_block = -(-size[1] // shape[0])
        for band_rows in (1, 2, rows_per_block // 2 + 1, rows_per_block + 3, 3 * rows_per_block - 1):
            banded = upsampled_argmax(values, size, band_pixels=band_rows * size[0])
            np.testing.assert_array_equal(banded, whole)
        monkeypatch.undo()


@pytest.mark.parametrize(("shape", "size", "step"), CASES[:3])
def test_the_banded_mask_agrees_with_enlarging_every_plane_with_pil(shape, size, step):
    logits = smooth_logits(shape, 7, step)
    plain = np.argmax(resize_logits(logits, Placement(0, 0, shape[1], shape[0]), size), axis=0)
    assert np.mean(upsampled_argmax(logits, size, band_pixels=size[0]) == plain) >= 0.9999


@pytest.mark.parametrize("placement", [Placement(0, 0, 20, 16), Placement(2, 1, 15, 13), Placement(0, 3, 20, 9)])
@pytest.mark.parametrize("band_pixels", [1, 97 * 5, 97 * 40])
def test_int8_codes_in_bands_give_the_mask_of_their_dequantized_logits(placement, band_pixels, monkeypatch):
    """The argmax on int8 codes with only the mixed taps dequantized, in bands, letterboxed or not: exactly the
    mask of the fully dequantized logits made in one band."""
    spec = TensorSpec("logits", (1, 16, 20, 21), "int8", 0.1173, -7)
    rng = np.random.default_rng(5)
    base = rng.integers(-128, 128, (4, 5, 21))
    codes = np.repeat(np.repeat(base, 4, axis=0), 4, axis=1).astype(np.int8)
    codes[5:9, 6:12] = rng.integers(-128, 128, (4, 6, 21)) // 32 * 32  # a noisy patch with exact ties
    codes[..., 20] = np.where(codes[..., 20] > 100, 127, codes[..., 20])  # an output past 20 classes: void
    size = (97, 83)
    expected = full_size_mask(dequantize(codes, spec), placement, size, "logits", 20, 255)
    monkeypatch.setattr(upsample_blocks, "BAND_PIXELS", band_pixels)
    got = full_size_mask(codes, placement, size, "logits", 20, 255, to_float=lambda part: dequantize(part, spec))
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.uint8 and got.shape == (size[1], size[0])


@pytest.mark.parametrize("opencv", [False, True])
def test_a_large_output_never_enlarges_every_plane(opencv, monkeypatch):
    """Where MaskCost prefers enlarging the planes: OpenCV's all-at-once resize only while all C planes fit in
    DENSE_MAX_BYTES, else PIL's plane by plane while two fit (exactly PIL's answer), else the block way."""
    logits = np.random.default_rng(2).normal(0.0, 1.0, (20, 24, 21)).astype(np.float32)
    placement, size = Placement(0, 0, 24, 20), (240, 200)
    plane = 240 * 200 * 4
    plain = np.argmax(resize_logits(logits, placement, size), axis=0)
    monkeypatch.setattr(upsample, "MASK_COST", upsample.MaskCost(block_fixed=1e9))  # dense always cheaper

    def refuse(*_args):
        raise AssertionError("all planes enlarged at once")

    monkeypatch.setattr(upsample, "dense_argmax", refuse)
    monkeypatch.setattr(upsample, "_opencv", (lambda: object()) if opencv else (lambda: None))  # only "importable"
    monkeypatch.setattr(upsample, "DENSE_MAX_BYTES", plane * 21 - 1)  # not all 21 planes: PIL's two at a time
    np.testing.assert_array_equal(full_size_mask(logits, placement, size, "logits", 21, 255), plain)
    monkeypatch.setattr(upsample, "DENSE_MAX_BYTES", plane * 2 - 1)  # not even two: the block way, in bands
    blocks = full_size_mask(logits, placement, size, "logits", 21, 255)
    np.testing.assert_array_equal(blocks, upsampled_argmax(logits, size).astype(np.uint8))
    assert np.mean(blocks == plain) >= 0.9999


def test_memory_stays_a_band_plus_the_mask(monkeypatch):
    """A 2400x1800 mask from noisy 21-class logits (every block a boundary, many candidates): the most numpy
    holds at once is the uint8 mask plus a bounded band, far below one float plane at that size."""
    logits = np.random.default_rng(4).normal(0.0, 1.0, (24, 32, 21)).astype(np.float32)
    size = (2400, 1800)
    monkeypatch.setattr(upsample_blocks, "BAND_PIXELS", 1 << 15)
    tracemalloc.start()
    try:
        mask = full_size_mask(logits, Placement(0, 0, 32, 24), size, "logits", 21, 255)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pixels = size[0] * size[1]
    assert mask.shape == (size[1], size[0])
    assert peak < pixels + 24 * (1 << 20)  # one float32 plane alone would be 4 bytes a pixel


@pytest.mark.parametrize("step", [0.0, 0.5])
def test_pil_planes_one_at_a_time_give_the_argmax_of_the_stack(step, monkeypatch):
    """Without OpenCV the dense way enlarges one plane at a time and keeps the best so far: the argmax of all
    planes stacked, ties to the lower class included, holding two planes instead of C."""
    logits = np.random.default_rng(9).normal(0.0, 1.0, (11, 13, 21)).astype(np.float32)
    if step:
        logits = (np.round(logits / step) * step).astype(np.float32)
    monkeypatch.setattr(upsample, "_opencv", lambda: None)
    size = (131, 97)
    stacked = np.argmax(resize_logits(logits, Placement(0, 0, 13, 11), size), axis=0)
    np.testing.assert_array_equal(upsample.dense_argmax(logits, size), stacked)
