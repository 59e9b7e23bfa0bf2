"""Loss and metrics that treat void (255) the way the VOC protocol does.

* ``MaskedSparseCrossEntropy``: the mean cross-entropy over pixels whose label
  is a real class. Void pixels weigh nothing; a batch that is all void
  contributes exactly 0 (never NaN, never a division by zero).
* ``ConfusionMatrixMetric`` and its two reports (``VoidAwareMeanIoU``,
  ``VoidAwarePixelAccuracy``): a (C, C+1) confusion matrix accumulated over the
  epoch, the same layout as ``segedge.contract.metrics.confusion_matrix``. Truth outside
  ``0..C-1`` (void 255, or the seed preset's void class 21) is skipped; a
  prediction outside it (the seed preset's class 21) is a miss in the last
  column, never a hit. mIoU is the mean over classes present in truth or
  prediction, as ``segedge.contract.metrics.mean_iou`` computes it. This is why Keras'
  ``MeanIoU`` over argmax of void-remapped labels is not used: it would score
  the void class and average over all 22.

Written with ``keras.ops`` (segment sums, no dynamic shapes), so they also
run under XLA and ``tf.distribute``.
"""

from __future__ import annotations

import keras
from keras import ops

from segedge.contract.labels import NUM_CLASSES

PACKAGE = "segedge"


def _flatten_labels(y_true, y_pred):
    """Labels as int32 of shape (N,), predictions as int32 argmax of shape (N,)."""
    truth = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    pred = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), (-1,))
    return truth, pred


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedSparseCrossEntropy(keras.losses.Loss):
    """Sparse categorical cross-entropy from logits over valid pixels only.

    A label is valid when it is in ``0..num_classes-1``; anything else (void
    255) is ignored. The result is the mean over the batch's valid pixels.
    It is expressed through Keras' own ``sum_over_batch_size`` reduction (each
    pixel returns ``ce * valid * pixels / max(valid pixels, 1)``) because that
    is the reduction Keras rescales per replica under ``tf.distribute``; a
    ``sum`` reduction would make gradients N times too large on N GPUs.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "masked_sparse_ce", **kwargs) -> None:
        kwargs["reduction"] = "sum_over_batch_size"
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == len(y_pred.shape):
            labels = ops.squeeze(labels, axis=-1)
        valid = ops.logical_and(labels >= 0, labels < self.num_classes)
        safe = ops.where(valid, labels, ops.zeros_like(labels))
        ce = ops.sparse_categorical_crossentropy(safe, y_pred, from_logits=True)
        weight = ops.cast(valid, ce.dtype)
        pixels = ops.sum(ops.ones_like(weight))
        count = ops.maximum(ops.sum(weight), ops.cast(1.0, ce.dtype))
        return ops.where(valid, ce, ops.zeros_like(ce)) * (pixels / count)

    def get_config(self) -> dict:
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConfusionMatrixMetric(keras.metrics.Metric):
    """Accumulates a (num_classes, num_classes + 1) confusion matrix; ``result()`` is mIoU.

    ``sample_weight`` is not supported (segmentation weights are per pixel and
    void already does that job); passing one raises.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "confusion", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.matrix = self.add_variable(
            shape=(self.num_classes, self.num_classes + 1), initializer="zeros", dtype="float64", name="matrix"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(f"{self.name}: sample_weight is not supported")
        classes = self.num_classes
        truth, pred = _flatten_labels(y_true, y_pred)
        valid = ops.logical_and(truth >= 0, truth < classes)
        pred = ops.where(ops.logical_and(pred >= 0, pred < classes), pred, ops.full_like(pred, classes))
        index = ops.where(valid, truth * (classes + 1) + pred, ops.zeros_like(truth))
        counts = ops.segment_sum(ops.cast(valid, "float32"), index, num_segments=classes * (classes + 1))
        self.matrix.assign_add(ops.reshape(ops.cast(counts, "float64"), (classes, classes + 1)))

    def per_class_iou(self):
        """IoU per class; -1 where the class is absent from truth and prediction."""
        classes = self.num_classes
        square = self.matrix[:, :classes]
        tp = ops.diagonal(square)
        union = ops.sum(self.matrix, axis=1) + ops.sum(square, axis=0) - tp
        present = union > 0
        return ops.where(present, tp / ops.where(present, union, ops.ones_like(union)), -ops.ones_like(union))

    def result(self):
        iou = self.per_class_iou()
        present = ops.cast(iou >= 0, "float64")
        total = ops.sum(ops.where(iou >= 0, iou, ops.zeros_like(iou)))
        return ops.cast(total / ops.maximum(ops.sum(present), 1.0), "float32")

    def reset_state(self):
        self.matrix.assign(ops.zeros_like(self.matrix))

    def get_config(self) -> dict:
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class VoidAwareMeanIoU(ConfusionMatrixMetric):
    """mIoU over the classes present, void ignored (the VOC protocol)."""

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "miou", **kwargs) -> None:
        super().__init__(num_classes=num_classes, name=name, **kwargs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class VoidAwarePixelAccuracy(ConfusionMatrixMetric):
    """Correct pixels / labelled pixels, void ignored; a void-class prediction counts as wrong."""

    def __init__(self, num_classes: int = NUM_CLASSES, name: str = "pixel_accuracy", **kwargs) -> None:
        super().__init__(num_classes=num_classes, name=name, **kwargs)

    def result(self):
        classes = self.num_classes
        correct = ops.sum(ops.diagonal(self.matrix[:, :classes]))
        total = ops.sum(self.matrix)
        return ops.cast(correct / ops.maximum(total, 1.0), "float32")


def make_loss(void_handling: str, num_outputs: int) -> keras.losses.Loss:
    """The default recipe ignores void; the seed preset trains void as class N (after the N classes), plain CE."""
    if void_handling == "class":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, name="sparse_ce")
    return MaskedSparseCrossEntropy(num_classes=num_outputs)


def make_metrics(num_classes: int = NUM_CLASSES) -> list[keras.metrics.Metric]:
    """Both recipes report over the dataset's classes (the seed preset's extra output is void, not scored)."""
    return [VoidAwarePixelAccuracy(num_classes), VoidAwareMeanIoU(num_classes)]
