"""Run each written artifact in its edge runtime on the reference images and compare with Keras.

Uses ``segedge.contract.runtime.open_backend`` (the code the device runs), so a
pass here means the file works the way predict and bench will load it. An
fp32 artifact that disagrees with Keras is a conversion bug, not quantization
loss, and fails the export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segedge.contract.manifest import TensorInfo
from segedge.contract.metrics import agreement, confusion_matrix, mean_iou
from segedge.contract.preprocess import PreprocessSpec
from segedge.contract.runtime import open_backend
from segedge.contract.targets import Precision, Target
from segedge.export.reference import Reference
from segedge.util.errors import ExportError
from segedge.util.progress import track

FP32_MIN_AGREEMENT = 0.999
MB = 1_000_000  # the size unit segedge prints everywhere (export, bench, quant-report): SI megabytes


def tensor_info(spec) -> TensorInfo:
    """What the written model itself declares (never what we asked the converter for)."""
    return TensorInfo(name=spec.name, dtype=spec.dtype, shape=[int(v) for v in spec.shape],
                      scale=spec.scale, zero_point=spec.zero_point)


def read_io(path: Path) -> tuple[TensorInfo, TensorInfo]:
    backend = open_backend(path)
    try:
        return tensor_info(backend.input), tensor_info(backend.output)
    finally:
        backend.close()


def verify_artifact(path: Path, target: Target, reference: Reference, spec: PreprocessSpec,
                    num_classes: int) -> dict[str, Any]:
    """Agreement with Keras' argmax, max |logit - Keras logit|, and mIoU against the ground truth.

    The artifact gets the reference's uint8 pixels through ``backend.prepare``, as on the
    device (a pixel-input model takes them unscaled; ``spec`` is used for files without
    embedded metadata).
    """
    backend = open_backend(path, spec=spec)
    try:
        masks, logits = [], []
        inputs = reference.inputs
        for i in track(range(len(inputs)), f"verifying {target.name}", total=len(inputs)):
            out = backend.run(inputs[i : i + 1])
            masks.append(out[0].argmax(-1).astype(np.uint8))
            if i < len(reference.logits):
                logits.append(out[0])
    finally:
        backend.close()
    pred = np.stack(masks)
    result: dict[str, Any] = {
        "agreement": agreement(pred, reference.keras),
        # None: the reference set has no ground truth (a dataset of images only), so no mIoU
        "miou": mean_iou(confusion_matrix(reference.truth, pred, num_classes)) if reference.has_truth else None,
        "miou_basis": miou_basis(len(pred), reference.split, pred.shape[1], pred.shape[2]),
        "images": len(pred),
    }
    if logits:
        result["max_abs_logit_error"] = float(np.abs(np.stack(logits) - reference.logits).max())
    return result


def miou_basis(images: int, split: str, height: int, width: int) -> dict[str, Any]:
    """What ``verify.miou`` was measured on: which held-out images, and at what resolution.

    Train (val images), export (held-out images, here) and bench (the reference set at each
    photo's own resolution) report different mIoU figures for one model; the manifest keeps
    this next to ``miou`` so the figure cannot be read as another one.
    """
    return {"images": int(images), "split": split, "resolution": "model", "height": int(height),
            "width": int(width)}


def basis_text(basis: dict[str, Any] | None) -> str:
    """``miou_basis`` in words: "6 test images at 64x64 model size"; "" for a bundle from before it was kept."""
    if not basis:
        return ""
    images = int(basis.get("images", 0))
    what = f"{images} {basis.get('split') or 'held-out'} image{'' if images == 1 else 's'}"
    if basis.get("resolution") == "model":
        return f"{what} at {basis.get('height')}x{basis.get('width')} model size"
    return f"{what} at each image's own resolution"


def check_fp32(target: Target, result: dict[str, Any]) -> None:
    if target.precision is Precision.fp32 and result["agreement"] < FP32_MIN_AGREEMENT:
        raise ExportError(
            f"export {target.name} failed verification: it agrees with Keras on "
            f"{100 * result['agreement']:.3f} % of reference pixels (< {100 * FP32_MIN_AGREEMENT:.1f} %); "
            "a float32 model must match its source, so this is a conversion bug"
        )


def describe(name: str, size_bytes: int, result: dict[str, Any], precision: str) -> str:
    """One line per artifact: size, agreement with Keras, logit error (float formats), mIoU.

    Units as everywhere a person reads them (bench, quant-report): MB = 10^6
    bytes, mIoU and agreement in percent, each labelled.
    """
    line = f"{name:<10} {size_bytes / MB:7.2f} MB  agreement {100 * result['agreement']:7.3f} %"
    if precision != Precision.int8.value and "max_abs_logit_error" in result:
        line += f"  max|dlogit| {result['max_abs_logit_error']:.2e}"
    if result.get("miou") is None:
        return line + "  mIoU n/a (no masks)"
    basis = basis_text(result.get("miou_basis"))
    return line + f"  mIoU {100 * result['miou']:.2f} %" + (f" ({basis})" if basis else "")
