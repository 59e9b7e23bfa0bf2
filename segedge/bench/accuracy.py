"""Accuracy per artifact from predicted masks at original resolution, through ``segedge.contract.metrics``.

Three questions, three numbers: how good is it (mIoU vs ground truth: ONE
confusion matrix over the whole set at each image's own resolution, void
ignored: the VOC protocol), how much did conversion cost (ΔmIoU in points vs
the Keras masks on the same reference images), and does it still say the same
thing as the original (agreement with the Keras masks over the pixels whose
ground truth is not void, and mIoU with the Keras masks taken as truth). None
of it needs TensorFlow. A reference set exported from images without masks
(``has_truth`` False) has no mIoU: those figures are None (reported "n/a") and
agreement counts every pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segedge.bench.data import EvalSet
from segedge.contract.labels import VOID
from segedge.contract.metrics import confusion_matrix, mean_iou, per_class_iou, pixel_accuracy


class MaskSizeError(ValueError):
    """A predicted mask is not at its image's size: the pipeline before the model is broken."""


def check_sizes(ids: Sequence[str], expected: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> None:
    if len(pred) != len(expected):
        raise MaskSizeError(f"{len(pred)} masks for {len(expected)} images")
    for sample_id, want, got in zip(ids, expected, pred, strict=True):
        if np.shape(got) != np.shape(want):
            raise MaskSizeError(f"the mask for {sample_id} is {np.shape(got)[1]}x{np.shape(got)[0]} pixels, "
                                f"its image {np.shape(want)[1]}x{np.shape(want)[0]} upright (EXIF orientation "
                                "or resizing back is broken)")


def set_confusion(truth: Sequence[np.ndarray], pred: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """One confusion matrix summed over every image of the set (not a mean of per-image mIoUs)."""
    total = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for t, p in zip(truth, pred, strict=True):
        total += confusion_matrix(t, p, num_classes)
    return total


def score(truth: Sequence[np.ndarray], pred: Sequence[np.ndarray], num_classes: int) -> dict:
    """mIoU, per-class IoU (None = class absent) and pixel accuracy over a whole set."""
    cm = set_confusion(truth, pred, num_classes)
    return {
        "miou": mean_iou(cm),
        "per_class_iou": [None if np.isnan(v) else float(v) for v in per_class_iou(cm)],
        "pixel_accuracy": pixel_accuracy(cm),
    }


def agreement_counts(pred: np.ndarray, keras: np.ndarray, truth: np.ndarray | None) -> tuple[int, int]:
    """(pixels where ``pred`` equals ``keras``, pixels counted): the pixels whose ground truth is not void.

    ``truth`` None (no ground truth): every pixel counts.
    """
    keep = np.ones(np.shape(keras), bool) if truth is None else np.asarray(truth) != VOID
    return int((np.asarray(pred)[keep] == np.asarray(keras)[keep]).sum()), int(keep.sum())


def per_image_agreement(pred: Sequence[np.ndarray], keras: Sequence[np.ndarray],
                        truth: Sequence[np.ndarray | None]) -> list[float]:
    out = []
    for p, k, t in zip(pred, keras, truth, strict=True):
        same, total = agreement_counts(p, k, t)
        out.append(same / total if total else 1.0)
    return out


def set_agreement(pred: Sequence[np.ndarray], keras: Sequence[np.ndarray],
                  truth: Sequence[np.ndarray | None]) -> float:
    counts = [agreement_counts(p, k, t) for p, k, t in zip(pred, keras, truth, strict=True)]
    total = sum(c[1] for c in counts)
    return sum(c[0] for c in counts) / total if total else 1.0


def artifact_accuracy(reference: EvalSet, pred_reference: Sequence[np.ndarray], num_classes: int,
                      evaluation: EvalSet | None = None, pred_eval: Sequence[np.ndarray] | None = None) -> dict:
    """Every accuracy figure for one artifact (or the live Keras row), at original resolution.

    ``evaluation`` is the ``--data`` set when given; otherwise mIoU is on the
    reference set. ΔmIoU and agreement are always on the reference set, where
    the Keras masks are. Raises ``MaskSizeError`` when a mask has the wrong size.
    """
    if reference.keras is None:
        raise ValueError("the reference set has no Keras masks")
    check_sizes(reference.ids, reference.truth, pred_reference)
    if not reference.has_truth:
        return _agreement_only(reference, pred_reference, num_classes, evaluation, pred_eval)
    on_reference = score(reference.truth, pred_reference, num_classes)
    keras_reference = score(reference.truth, reference.keras, num_classes)
    if evaluation is not None and pred_eval is not None:
        check_sizes(evaluation.ids, evaluation.truth, pred_eval)
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
        "resolution": "original",
        "miou_reference": on_reference["miou"],
        "keras_miou_reference": keras_reference["miou"],
        "miou_delta_pts": 100.0 * (on_reference["miou"] - keras_reference["miou"]),
        "agreement": set_agreement(pred_reference, reference.keras, reference.truth),
        # Keras masks as the truth: pixels Keras calls void (seed preset's void output) are ignored.
        "miou_vs_keras": mean_iou(set_confusion(reference.keras, pred_reference, num_classes)),
        "per_image_agreement": per_image_agreement(pred_reference, reference.keras, reference.truth),
    }


def _agreement_only(reference: EvalSet, pred_reference: Sequence[np.ndarray], num_classes: int,
                    evaluation: EvalSet | None, pred_eval: Sequence[np.ndarray] | None) -> dict:
    """No ground truth on the reference set: agreement over every pixel; mIoU only from a --data set."""
    on_eval: dict = {"miou": None, "per_class_iou": [None] * num_classes, "pixel_accuracy": None}
    eval_name, eval_images = reference.name, len(reference)
    if evaluation is not None and pred_eval is not None and evaluation.has_truth:
        check_sizes(evaluation.ids, evaluation.truth, pred_eval)
        on_eval = score(evaluation.truth, pred_eval, num_classes)
        eval_name, eval_images = evaluation.name, len(evaluation)
    everything = [None] * len(pred_reference)
    return {
        **on_eval, "eval_set": eval_name, "eval_images": eval_images, "resolution": "original",
        "miou_reference": None, "keras_miou_reference": None, "miou_delta_pts": None, "has_truth": False,
        "agreement": set_agreement(pred_reference, reference.keras, everything),
        "miou_vs_keras": mean_iou(set_confusion(reference.keras, pred_reference, num_classes)),
        "per_image_agreement": per_image_agreement(pred_reference, reference.keras, everything),
    }


def data_parity(evaluation: EvalSet, pred: Sequence[np.ndarray], keras: Sequence[np.ndarray],
                num_classes: int) -> dict:
    """The gate's figures on the ``--data`` images: an artifact's masks against the live Keras model's masks.

    The reference set holds the bundle's few held-out images, near the training
    shapes; a fault that shows on a user's tall or wide photos (the wrong resize
    mode, say) can pass there. With the Keras model at hand its masks on the
    user's images are made by the same pipeline, so the same bounds can judge
    them. Agreement counts the pixels whose ground truth is not void.
    """
    check_sizes(evaluation.ids, evaluation.truth, pred)
    check_sizes(evaluation.ids, evaluation.truth, keras)
    truth: Sequence[np.ndarray | None] = evaluation.truth if evaluation.has_truth else [None] * len(evaluation)
    miou = keras_miou = delta = None
    if evaluation.has_truth:
        miou = score(evaluation.truth, pred, num_classes)["miou"]
        keras_miou = score(evaluation.truth, keras, num_classes)["miou"]
        delta = 100.0 * (miou - keras_miou)
    return {"eval_set": evaluation.name, "images": len(evaluation), "miou": miou, "keras_miou": keras_miou,
            "miou_delta_pts": delta, "agreement": set_agreement(pred, keras, truth),
            "per_image_agreement": per_image_agreement(pred, keras, truth)}


def keras_reference_accuracy(reference: EvalSet, num_classes: int) -> dict:
    """The Keras masks stored in the bundle scored like an artifact (no TensorFlow needed)."""
    result = artifact_accuracy(reference, reference.keras, num_classes)
    result["source"] = "reference.npz"
    return result
