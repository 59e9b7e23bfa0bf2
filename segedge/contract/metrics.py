"""Dataset mIoU from a confusion matrix, void ignored: the VOC protocol, numpy only.

Shared by training reports, export verification and bench, so every number
that says "mIoU" in segedge means the same thing.
"""

from __future__ import annotations

import numpy as np

from segedge.contract.labels import VOID


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int, void: int = VOID) -> np.ndarray:
    """(num_classes, num_classes + 1) int64 counts: rows = truth, columns = prediction.

    ``num_classes`` is the dataset's (the manifest's), never assumed to be VOC's 21.

    Void (and any out-of-range truth) is ignored. The extra last column counts
    predictions outside ``0..num_classes-1`` (the seed preset's "void" output):
    a miss for the true class, never a false positive for another class.
    """
    truth = np.asarray(truth).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    if truth.shape != pred.shape:
        raise ValueError(f"truth has {truth.size} pixels, prediction {pred.size}")
    keep = (truth != void) & (truth >= 0) & (truth < num_classes)
    pred = pred[keep]
    pred = np.where((pred >= 0) & (pred < num_classes), pred, num_classes)
    width = num_classes + 1
    index = truth[keep] * width + pred
    return np.bincount(index, minlength=num_classes * width).reshape(num_classes, width)


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class; NaN where a class is absent from both truth and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    classes = cm.shape[0]
    tp = np.diag(cm[:, :classes])
    union = cm.sum(1) + cm[:, :classes].sum(0) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean over classes present in truth or prediction (absent classes excluded)."""
    iou = per_class_iou(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0


def pixel_accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm[:, : cm.shape[0]]) / total) if total else 0.0


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels where two predicted masks agree."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    return float((a == b).mean()) if a.size else 1.0
