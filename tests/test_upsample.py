"""``segedge.contract.upsample``: logits -> mask at the image's size, both modes, against hand-derived boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from segedge.contract.preprocess import Placement
from segedge.contract.upsample import check_upsample, full_size_mask, resize_logits, upsampled_argmax
from segedge.util.errors import ConfigError

CROSSING = 4.3  # model-pixel coordinate (pixel i spans [i, i + 1)) where class 1 starts to win


def ramp_logits(height: int = 8, width: int = 8) -> np.ndarray:
    """Class 0: 0 everywhere; class 1: a ramp in x that is 0 at ``CROSSING`` (sampled at pixel centres)."""
    logits = np.zeros((height, width, 2), np.float32)
    logits[..., 1] = (np.arange(width, dtype=np.float32) + 0.5 - CROSSING)[None, :]
    return logits


def first_column_of_class_1(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask[0] == 1)[0])


def test_logits_mode_puts_the_boundary_where_the_ramp_crosses_zero():
    # image 80 px wide = 10 image pixels per model pixel: image pixel j's centre is at (j + 0.5) / 10 model px,
    # so class 1 starts at the first j with (j + 0.5) / 10 > 4.3: j = 43 (a linear ramp stays linear under bilinear)
    mask = full_size_mask(ramp_logits(), Placement(0, 0, 8, 8), (80, 8), "logits", 21, 255)
    assert mask.shape == (8, 80)
    assert first_column_of_class_1(mask) == 43
    assert set(np.unique(mask)) == {0, 1}


def test_mask_mode_is_blocky_at_model_pixel_edges():
    # argmax at model size: pixel i is class 1 when i + 0.5 > 4.3, i.e. i >= 4; nearest x10 -> column 40
    mask = full_size_mask(ramp_logits(), Placement(0, 0, 8, 8), (80, 8), "mask", 21, 255)
    assert first_column_of_class_1(mask) == 40


def test_only_the_content_crop_is_used_and_extra_outputs_are_void():
    logits = np.zeros((8, 8, 23), np.float32)
    logits[..., 2] = 9.0  # the letterbox padding rows say class 2
    logits[2:6, :, 2] = 0.0
    logits[2:6, :4, 5] = 1.0
    logits[2:6, 4:, 22] = 1.0  # an output index past the 21 classes (the seed preset's void)
    for mode in ("logits", "mask"):
        mask = full_size_mask(logits, Placement(0, 2, 8, 4), (16, 8), mode, 21, 255)
        assert mask.shape == (8, 16)
        assert 2 not in mask  # nothing from the padding
        assert (mask[:, :6] == 5).all() and (mask[:, 10:] == 255).all()


def test_unknown_mode_is_a_config_error():
    assert check_upsample("mask") == "mask"
    with pytest.raises(ConfigError, match="--upsample must be logits or mask, got 'cubic'"):
        check_upsample("cubic")


@pytest.mark.parametrize(("shape", "size", "step"), [((12, 16, 5), (61, 47), 0.0), ((9, 9, 21), (500, 375), 0.25),
                                                      ((24, 20, 3), (20, 24), 0.0), ((7, 11, 4), (11, 30), 0.5)])
def test_block_argmax_matches_enlarging_every_plane_with_pil(shape, size, step):
    """The block shortcut against the plain way (PIL bilinear per class, then argmax) on random logits.

    ``step`` > 0 puts the logits on a coarse grid, as an int8 model's dequantized outputs are: many exact
    ties, which both ways must give to the lower class index.
    """
    rng = np.random.default_rng(sum(shape) + size[0])
    logits = rng.normal(0.0, 2.0, shape).astype(np.float32)
    if step:
        logits = (np.round(logits / step) * step).astype(np.float32)
    plain = np.argmax(resize_logits(logits, Placement(0, 0, shape[1], shape[0]), size), axis=0)
    fast = upsampled_argmax(logits, size)
    assert fast.shape == plain.shape == (size[1], size[0])
    assert np.mean(fast == plain) >= 0.9999  # a differing pixel needs a float-rounding near-tie


def test_shrinking_takes_the_pil_path():
    # class 0 at 0.5, class 1 a step 0 -> 1 at column 20: shrunk 4x with PIL's antialiasing (a triangle
    # 8 source pixels wide), image column 4 sees 1/8 of its weight right of the step, column 5 sees 7/8
    logits = np.zeros((40, 40, 2), np.float32)
    logits[..., 0] = 0.5
    logits[:, 20:, 1] = 1.0
    mask = full_size_mask(logits, Placement(0, 0, 40, 40), (10, 10), "logits", 21, 255)
    assert (mask[:, :5] == 0).all() and (mask[:, 5:] == 1).all()


def test_noisy_logits_take_the_dense_path_with_or_without_opencv(monkeypatch):
    """Boundaries everywhere (random logits): every plane enlarged; PIL's answer exactly without OpenCV."""
    import segedge.contract.upsample as upsample

    logits = np.random.default_rng(3).normal(0.0, 1.0, (20, 24, 21)).astype(np.float32)
    placement, size = Placement(0, 0, 24, 20), (120, 100)
    plain = np.argmax(resize_logits(logits, placement, size), axis=0)
    assert upsampled_argmax(logits, size, dense_if=lambda blocks, pixels: blocks > 100) is None
    assert upsampled_argmax(logits, size, dense_if=lambda blocks, pixels: False) is not None
    assert np.mean(full_size_mask(logits, placement, size, "logits", 21, 255) == plain) >= 0.9999
    monkeypatch.setattr(upsample, "_opencv", lambda: None)
    assert (full_size_mask(logits, placement, size, "logits", 21, 255) == plain).all()


def test_mask_cost_picks_the_block_path_for_few_boundaries_and_dense_for_many():
    from segedge.contract.upsample import MASK_COST

    # a 224 px model, a 1024x768 photo, 600 mixed blocks (a clean mask): enlarging 21 planes costs far more
    assert not MASK_COST.block_is_slower(224 * 224, 21, 1024 * 768, True, blocks=600, pixels=9_000)
    # the same model on a 300x225 photo with boundaries everywhere: the output is small, the blocks many
    assert MASK_COST.block_is_slower(224 * 224, 21, 300 * 225, True, blocks=12_000, pixels=17_000)
    # without OpenCV, PIL per plane is slower, so the block path keeps cases OpenCV would take
    assert MASK_COST.block_is_slower(224 * 224, 21, 500 * 375, True, blocks=5_000, pixels=18_000)
    assert not MASK_COST.block_is_slower(224 * 224, 21, 500 * 375, False, blocks=5_000, pixels=18_000)


@pytest.mark.parametrize("way", ["block", "dense", "shrink", "mask", "letterbox"])
def test_int8_codes_give_the_mask_of_their_dequantized_logits(way, monkeypatch):
    """``to_float``: the argmax runs on an int8 model's codes and only what needs floats is dequantized; the mask
    must be the one the fully dequantized logits give, exactly (the same floats, the same order, ties included),
    on every way to the full size."""
    import segedge.contract.upsample as upsample
    from segedge.contract.runtime import TensorSpec, dequantize

    spec = TensorSpec("logits", (1, 16, 20, 21), "int8", 0.1173, -7)
    rng = np.random.default_rng(11)
    # a smooth field of classes (few boundaries) plus coarse codes: many exact ties between classes
    base = rng.integers(-128, 128, (4, 5, 21))
    codes = np.repeat(np.repeat(base, 4, axis=0), 4, axis=1).astype(np.int8)
    codes[5:9, 6:12] = rng.integers(-128, 128, (4, 6, 21)) // 32 * 32  # a noisy patch
    placement, size, mode = Placement(0, 0, 20, 16), (97, 83), "logits"
    if way == "dense":
        monkeypatch.setattr(upsample, "MASK_COST", upsample.MaskCost(block_fixed=1e9))  # dense always cheaper
    elif way == "shrink":
        size = (9, 7)
    elif way == "mask":
        mode = "mask"
    elif way == "letterbox":
        placement = Placement(2, 1, 15, 13)
    floats = dequantize(codes, spec)
    expected = full_size_mask(floats, placement, size, mode, 21, 255)
    got = full_size_mask(codes, placement, size, mode, 21, 255, to_float=lambda part: dequantize(part, spec))
    assert got.shape == (size[1], size[0])
    np.testing.assert_array_equal(got, expected)
