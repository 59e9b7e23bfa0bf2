"""Bench accuracy through its own aggregation path, against numbers worked out by hand.

Masks are lists (each image at its own resolution), as bench scores them.
"""

from __future__ import annotations

import numpy as np
import pytest

from segedge.bench.accuracy import MaskSizeError, artifact_accuracy, keras_reference_accuracy
from segedge.bench.data import EvalSet

V = 255
# Two 2x2 images. Pixels scored (void skipped), as (truth, prediction):
#   image A: (0,0) (0,0) (1,0) (1,0)      image B: (2,2) (2,1) (1,1); B's void pixel predicted 5 is ignored
# Dataset confusion matrix -> class 0: tp 2, union 2 + 4 - 2 = 4 -> 0.5
#                             class 1: tp 1, union 3 + 2 - 1 = 4 -> 0.25
#                             class 2: tp 1, union 2 + 1 - 1 = 2 -> 0.5
# mIoU = (0.5 + 0.25 + 0.5) / 3 = 0.41667 over the 3 classes present; class 5 (only on void) is absent.
# (Averaging per-image mIoUs instead would give (0.25 + 0.5) / 2 = 0.375.)
TRUTH = np.array([[[0, 0], [1, 1]], [[2, 2], [V, 1]]], dtype=np.uint8)
PRED = np.array([[[0, 0], [0, 0]], [[2, 1], [5, 1]]], dtype=np.uint8)
KERAS = np.array([[[0, 0], [0, 1]], [[2, 1], [5, 1]]], dtype=np.uint8)  # differs from PRED in 1 of 8 pixels


def _reference(truth=TRUTH, keras=KERAS) -> EvalSet:
    return EvalSet("reference", [f"id{i}" for i in range(len(truth))], list(truth), list(keras))


def test_miou_is_dataset_level_with_void_ignored_and_absent_classes_excluded():
    acc = artifact_accuracy(_reference(), list(PRED), num_classes=21)
    assert acc["miou"] == pytest.approx((0.5 + 0.25 + 0.5) / 3)
    iou = acc["per_class_iou"]
    assert iou[:3] == pytest.approx([0.5, 0.25, 0.5])
    assert iou[5] is None and all(v is None for v in iou[3:])
    assert acc["pixel_accuracy"] == pytest.approx(4 / 7)  # 4 of the 7 non-void pixels right


def test_agreement_and_delta_against_the_keras_masks():
    acc = artifact_accuracy(_reference(), list(PRED), num_classes=21)
    # over the 7 pixels whose ground truth is not void (B's void pixel is left out, as in mIoU): A differs in 1
    assert acc["agreement"] == pytest.approx(6 / 7)
    assert acc["per_image_agreement"] == pytest.approx([3 / 4, 1.0])
    # Keras vs truth: A (0,0)(0,0)(1,0)(1,1), B as PRED -> class0 2/3, class1 2/4, class2 1/2
    keras_miou = (2 / 3 + 0.5 + 0.5) / 3
    assert acc["keras_miou_reference"] == pytest.approx(keras_miou)
    assert acc["miou_delta_pts"] == pytest.approx(100 * ((0.5 + 0.25 + 0.5) / 3 - keras_miou))
    assert keras_reference_accuracy(_reference(), 21)["agreement"] == 1.0


def test_seed_void_class_is_a_miss_not_a_false_positive():
    truth = np.array([[[2, 3]]], dtype=np.uint8)
    pred = np.array([[[21, 3]]], dtype=np.uint8)  # 22-output model: 21 = "void"
    acc = artifact_accuracy(_reference(truth, truth), list(pred), num_classes=21)
    assert acc["per_class_iou"][2] == 0.0 and acc["per_class_iou"][3] == 1.0
    assert acc["miou"] == pytest.approx(0.5)


def test_eval_set_scores_miou_while_agreement_stays_on_the_reference():
    other_truth = [np.array([[1, 1], [1, 1]], dtype=np.uint8)]
    evaluation = EvalSet("val", ["x"], other_truth)
    acc = artifact_accuracy(_reference(), list(PRED), 21, evaluation, [np.ones((2, 2), np.uint8)])
    assert acc["miou"] == 1.0 and acc["eval_set"] == "val" and acc["eval_images"] == 1
    assert acc["agreement"] == pytest.approx(6 / 7)


def test_images_of_different_sizes_share_one_confusion_matrix():
    # a 1x3 image (truth 0 0 1, pred 0 1 1) and a 2x1 image (truth 1 1, pred 1 1):
    # class 0: tp 1, union 2 + 1 - 1 = 2 -> 0.5; class 1: tp 3, union 3 + 4 - 3 = 4 -> 0.75; mIoU 0.625
    truth = [np.array([[0, 0, 1]], np.uint8), np.array([[1], [1]], np.uint8)]
    pred = [np.array([[0, 1, 1]], np.uint8), np.array([[1], [1]], np.uint8)]
    acc = artifact_accuracy(EvalSet("r", ["a", "b"], truth, truth), pred, 21)
    assert acc["miou"] == pytest.approx(0.625) and acc["agreement"] == pytest.approx(4 / 5)


def test_a_mask_of_the_wrong_size_is_an_error_naming_the_image():
    turned = [np.zeros((2, 2), np.uint8), np.zeros((1, 2), np.uint8)]
    with pytest.raises(MaskSizeError, match="the mask for id1 is 2x1 pixels, its image 2x2 upright"):
        artifact_accuracy(_reference(), turned, 21)
