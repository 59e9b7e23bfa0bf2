import math

import numpy as np
import pytest

from segedge.contract.metrics import agreement, confusion_matrix, mean_iou, per_class_iou, pixel_accuracy


def test_hand_computed_miou_ignores_void_and_absent_classes():
    truth = np.array([[0, 0, 1, 1], [0, 255, 1, 2]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 2, 2]])
    cm = confusion_matrix(truth, pred, num_classes=4)
    # class 0: tp 2, fn 1, fp 0 -> 2/3; class 1: tp 2, fn 1, fp 1 -> 2/4; class 2: tp 1, fp 1 -> 1/2
    iou = per_class_iou(cm)
    assert iou[:3] == pytest.approx([2 / 3, 0.5, 0.5])
    assert math.isnan(iou[3])  # absent from truth and prediction: excluded from the mean
    assert mean_iou(cm) == pytest.approx((2 / 3 + 0.5 + 0.5) / 3)
    assert pixel_accuracy(cm) == pytest.approx(5 / 7)  # the void pixel is not counted


def test_prediction_outside_class_range_is_a_miss_not_a_false_positive():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 21, 1, 1])  # 21: the seed preset's void output
    cm = confusion_matrix(truth, pred, num_classes=21)
    iou = per_class_iou(cm)
    assert iou[0] == pytest.approx(0.5) and iou[1] == pytest.approx(1.0) and math.isnan(iou[20])


def test_agreement():
    a = np.array([[1, 2], [3, 4]])
    assert agreement(a, a) == 1.0
    assert agreement(a, np.array([[1, 2], [3, 0]])) == 0.75
