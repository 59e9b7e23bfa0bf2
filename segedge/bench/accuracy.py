"""Accuracy per artifact from predicted masks, through ``segedge.metrics`` (the one mIoU).

Three questions, three numbers: how good is it (mIoU vs ground truth), how much
did conversion cost (ΔmIoU in points vs the Keras masks on the same reference
images), and does it still say the same thing as the original (pixel agreement
and mIoU with the Keras masks taken as truth). None of it needs TensorFlow.
"""

from __future__ import annotations

import numpy as np

from segedge.bench.data import EvalSet
from segedge.metrics import agreement, confusion_matrix, mean_iou, per_class_iou, pixel_accuracy


def score(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> dict:
    """mIoU, per-class IoU (None = class absent) and pixel accuracy over a whole set."""
    cm = confusion_matrix(truth, pred, num_classes)
    return {
        "miou": mean_iou(cm),
        "per_class_iou": [None if np.isnan(v) else float(v) for v in per_class_iou(cm)],
        "pixel_accuracy": pixel_accuracy(cm),
    }


def per_image_agreement(pred: np.ndarray, keras: np.ndarray) -> list[float]:
    return [agreement(p, k) for p, k in zip(pred, keras, strict=True)]


def artifact_accuracy(reference: EvalSet, pred_reference: np.ndarray, num_classes: int,
                      evaluation: EvalSet | None = None, pred_eval: np.ndarray | None = None) -> dict:
    """Every accuracy figure for one artifact (or the live Keras row).

    ``evaluation`` is the ``--data`` set when given; otherwise mIoU is on the
    reference set. ΔmIoU and agreement are always on the reference set, where
    the Keras masks are.
    """
    if pred_reference.shape != reference.truth.shape:
        raise ValueError(f"predictions are {pred_reference.shape}, reference truth {reference.truth.shape}")
    on_reference = score(reference.truth, pred_reference, num_classes)
    keras_reference = score(reference.truth, reference.keras, num_classes)
    if evaluation is not None and pred_eval is not None:
        on_eval = score(evaluation.truth, pred_eval, num_classes)
        eval_name, eval_images = evaluation.name, len(evaluation)
    else:
        on_eval, eval_name, eval_images = on_reference, reference.name, len(reference)
    return {
        "miou": on_eval["miou"],
        "per_class_iou": on_eval["per_class_iou"],
        "pixel_accuracy": on_eval["pixel_accuracy"],
        "eval_set": eval_name,
        "eval_images": eval_images,
        "miou_reference": on_reference["miou"],
        "keras_miou_reference": keras_reference["miou"],
        "miou_delta_pts": 100.0 * (on_reference["miou"] - keras_reference["miou"]),
        "agreement": agreement(pred_reference, reference.keras),
        # Keras masks as the truth: pixels Keras calls void (seed preset's class 21) are ignored.
        "miou_vs_keras": mean_iou(confusion_matrix(reference.keras, pred_reference, num_classes)),
        "per_image_agreement": per_image_agreement(pred_reference, reference.keras),
    }


def keras_reference_accuracy(reference: EvalSet, num_classes: int) -> dict:
    """The Keras masks stored in the bundle scored like an artifact (no TensorFlow needed)."""
    result = artifact_accuracy(reference, reference.keras, num_classes)
    result["source"] = "reference.npz"
    return result
