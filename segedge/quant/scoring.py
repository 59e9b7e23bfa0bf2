"""Score a candidate model on the bundle's reference set, and how noisy that score is (no TensorFlow).

Each candidate runs through ``segedge.contract.runtime.open_backend`` (the code
the device runs) on ``reference.npz``; mIoU is ``segedge.contract.metrics.mean_iou``
against the ground truth, compared with the Keras model's mIoU on the same
images. With tens of reference images a drop of a fraction of a point is
within noise, so the drop's spread is estimated by a paired bootstrap over
the reference images (the same resampled images for Keras and the model).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segedge.contract.metrics import confusion_matrix, mean_iou
from segedge.contract.runtime import open_backend
from segedge.quant.context import QuantContext

LATENCY_REPEATS = 5
BOOTSTRAP_ROUNDS = 400
BOOTSTRAP_SEED = 0


@dataclass
class Score:
    miou: float
    p50_ms: float
    masks: np.ndarray  # (N, H, W) argmax per reference image


def keras_miou(ctx: QuantContext) -> float:
    return mean_iou(confusion_matrix(ctx.reference.truth, ctx.reference.keras, ctx.manifest.num_classes))


def score_model(path: Path, ctx: QuantContext, repeats: int = LATENCY_REPEATS) -> Score:
    """mIoU on the reference set and p50 ms of ``repeats`` single-image invokes, through the edge runtime."""
    backend = open_backend(path, spec=ctx.manifest.preprocess)
    try:
        inputs = ctx.reference.inputs  # uint8 pixels, prepared by the backend as on the device
        masks = [backend.run(inputs[i : i + 1])[0].argmax(-1) for i in range(len(inputs))]
        tensor = backend.prepare(inputs[:1])
        backend.invoke(tensor)  # warm-up
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            backend.invoke(tensor)
            times.append(1000.0 * (time.perf_counter() - start))
    finally:
        backend.close()
    stacked = np.stack(masks)
    miou = mean_iou(confusion_matrix(ctx.reference.truth, stacked, ctx.manifest.num_classes))
    return Score(miou, float(np.median(times)), stacked)


def per_image_confusion(truth: np.ndarray, masks: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, C, C + 1): one confusion matrix per image, so resampled sets are sums of rows."""
    return np.stack([confusion_matrix(t, m, num_classes) for t, m in zip(truth, masks, strict=True)])


def drop_noise(truth: np.ndarray, keras: np.ndarray, masks: np.ndarray, num_classes: int,
               rounds: int = BOOTSTRAP_ROUNDS, seed: int = BOOTSTRAP_SEED) -> float | None:
    """Standard deviation (mIoU points) of the drop Keras - model over paired bootstrap resamples of the images.

    Zero when the model predicts exactly what Keras predicts; grows as the
    reference set shrinks; None with fewer than two images (no spread to resample).
    Fixed seed: the same inputs give the same figure.
    """
    if len(truth) < 2:
        return None
    cm_keras = per_image_confusion(truth, keras, num_classes)
    cm_model = per_image_confusion(truth, masks, num_classes)
    rng = np.random.default_rng(seed)
    drops = np.empty(rounds)
    for r in range(rounds):
        pick = rng.integers(0, len(truth), len(truth))
        drops[r] = 100.0 * (mean_iou(cm_keras[pick].sum(0)) - mean_iou(cm_model[pick].sum(0)))
    return float(drops.std(ddof=1))
