"""The self-check a bundle passes before ``serve`` lets it answer: its own reference images, segmented here.

A reload swaps models on a running device, so the new one must show it works before the old one
goes: loading proves the files match the manifest, and this proves the masks do. It segments the
first few images of the bundle's reference set (``reference.npz``: the original file bytes and the
Keras masks at full resolution, the set ``segedge bench`` judges) through ``Segmenter.predict`` and
compares with the Keras masks. It is a cheap guard against a wrong, damaged or mismatched model,
not the parity gate: the bound is the artifact's own recorded export agreement less a margin.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from segedge.contract.manifest import REFERENCE_NAME
from segedge.contract.reference import Reference
from segedge.data.images import read_upright
from segedge.edge.predictor import Segmenter
from segedge.util.errors import ModelError

CHECK_IMAGES = 3  # a few images: seconds on a Pi, enough to tell a working model from a broken one
MARGIN = 0.03  # agreement may fall this far below the export's model-size figure (full size differs a little)
CEILING = 0.98  # never ask more than bench's default parity bound
FLOOR = 0.5


@dataclass
class CheckResult:
    """What the self-check measured, for /healthz, /v1/model and the reload answer."""

    ok: bool
    images: int
    agreement: float | None  # fraction of pixels equal to the Keras masks; None without a reference set
    bound: float | None
    seconds: float
    note: str = ""
    per_image: list[float] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"ok": self.ok, "images": self.images, "agreement": self.agreement, "bound": self.bound,
                "seconds": round(self.seconds, 3), "note": self.note, "per_image": self.per_image}


def agreement_bound(segmenter: Segmenter) -> float:
    recorded = segmenter.info.verify.get("agreement") if segmenter.info.verify else None
    if not isinstance(recorded, (int, float)):
        return CEILING
    return max(FLOOR, min(CEILING, float(recorded) - MARGIN))


def reference_path(segmenter: Segmenter) -> Path | None:
    """``BUNDLE/reference.npz`` beside the model, when the manifest names one and it is there."""
    name = (segmenter.manifest.reference or {}).get("file") or REFERENCE_NAME
    path = segmenter.path.parent / str(name)
    return path if path.is_file() else None


def self_check(segmenter: Segmenter, images: int = CHECK_IMAGES) -> CheckResult:
    """Segment up to ``images`` reference images; ``ok`` when the pixels agree with Keras within the bound.

    A bare model file (no bundle, so no reference set) is checked by running one blank frame: it
    proves the runtime opens and answers, and the note says no masks were compared.
    """
    start = time.perf_counter()
    path = reference_path(segmenter)
    if path is None:
        spec = segmenter.manifest.preprocess
        mask = segmenter.predict(np.zeros((spec.height, spec.width, 3), np.uint8))
        return CheckResult(ok=mask.shape == (spec.height, spec.width), images=0, agreement=None, bound=None,
                           seconds=time.perf_counter() - start,
                           note="no reference set beside the model: ran one blank frame, compared no masks")
    ref = Reference.load(path)
    if ref.version < 2 or not ref.originals:
        raise ModelError(f"{path}: a format-{ref.version} reference set has no original images; re-export the bundle")
    bound = agreement_bound(segmenter)
    scores = []
    for data, expected in list(zip(ref.originals, ref.keras_full, strict=True))[:images]:
        mask = segmenter.predict(read_upright(Image.open(io.BytesIO(data))))
        if mask.shape != expected.shape:
            raise ModelError(f"{path}: a mask of {mask.shape} for a reference image of {expected.shape}; the model "
                             "and the reference set come from different exports")
        scores.append(float(np.mean(mask == expected)))
    agreement = float(np.mean(scores)) if scores else None
    ok = agreement is not None and agreement >= bound
    note = "" if ok else (f"agreement with the bundle's Keras masks {100 * (agreement or 0):.2f} % is under "
                          f"{100 * bound:.2f} % on {len(scores)} reference image(s)")
    return CheckResult(ok=ok, images=len(scores), agreement=agreement, bound=bound,
                       seconds=time.perf_counter() - start, note=note, per_image=[round(s, 6) for s in scores])
