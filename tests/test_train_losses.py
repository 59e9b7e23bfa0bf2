"""Void in the loss and the metrics: ignored, never NaN, same numbers as segedge.contract.metrics."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from segedge.contract import metrics  # noqa: E402
from segedge.train.losses import (  # noqa: E402
    MaskedSparseCrossEntropy,
    VoidAwareMeanIoU,
    VoidAwarePixelAccuracy,
    make_loss,
)

RNG = np.random.default_rng(0)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_all_void_batch_contributes_zero_loss_and_zero_gradient():
    import tensorflow as tf

    logits = tf.Variable(RNG.normal(size=(2, 8, 8, 21)).astype(np.float32) * 50)
    labels = np.full((2, 8, 8), 255, np.int32)
    with tf.GradientTape() as tape:
        loss = MaskedSparseCrossEntropy(21)(labels, logits)
    grad = tape.gradient(loss, logits).numpy()
    assert float(loss) == 0.0
    assert np.isfinite(grad).all() and not grad.any()


def test_loss_is_the_mean_over_labelled_pixels_only():
    logits = RNG.normal(size=(2, 4, 4, 21)).astype(np.float32)
    labels = RNG.integers(0, 21, size=(2, 4, 4)).astype(np.int32)
    labels[0, :2] = 255
    valid = labels != 255
    picked = np.take_along_axis(_log_softmax(logits), np.where(valid, labels, 0)[..., None], -1)[..., 0]
    expected = -picked[valid].mean()
    assert float(MaskedSparseCrossEntropy(21)(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_seed_preset_loss_trains_void_as_class_21():
    loss = make_loss("class", 22)
    logits = np.zeros((1, 2, 2, 22), np.float32)
    assert float(loss(np.full((1, 2, 2), 21, np.int32), logits)) == pytest.approx(np.log(22), rel=1e-5)


def _batches():
    """Two batches of 22-channel logits: void truth, void-class predictions, an absent class."""
    truth = RNG.choice([0, 1, 8, 255], size=(2, 3, 6, 6), p=[0.4, 0.25, 0.25, 0.1]).astype(np.int32)
    pred = RNG.choice([0, 1, 8, 15, 21], size=(2, 3, 6, 6)).astype(np.int64)
    truth[1, 0, 0, :3] = 21  # the seed preset's void class in truth: not scored
    logits = np.eye(22, dtype=np.float32)[pred] * 5.0
    return truth, pred, logits


def test_confusion_matrix_metrics_match_segedge_metrics():
    truth, pred, logits = _batches()
    miou, accuracy = VoidAwareMeanIoU(21), VoidAwarePixelAccuracy(21)
    for batch in range(2):
        miou.update_state(truth[batch], logits[batch])
        accuracy.update_state(truth[batch], logits[batch])
    cm = metrics.confusion_matrix(truth, pred, 21)
    assert np.array_equal(miou.matrix.numpy(), cm)
    assert float(miou.result()) == pytest.approx(metrics.mean_iou(cm), abs=1e-6)
    assert float(accuracy.result()) == pytest.approx(metrics.pixel_accuracy(cm), abs=1e-6)


def test_hand_case_miou_over_present_classes():
    truth = np.array([[0, 0, 1, 255]], np.int32)
    logits = np.eye(21, dtype=np.float32)[np.array([[0, 1, 1, 5]])]
    metric = VoidAwareMeanIoU(21)
    metric.update_state(truth, logits)
    assert float(metric.result()) == pytest.approx((1 / 2 + 1 / 2) / 2)  # class 5 (only on void) not counted
    metric.reset_state()
    assert float(metric.result()) == 0.0 and not metric.matrix.numpy().any()
