"""The parity gate on the user's ``--data`` images: judged against the Keras model's masks, or said not to be.

The bundle's reference images carry the Keras masks export saved, so the gate
can always judge them. The ``--data`` images carry none: the only thing to
compare a conversion's masks with is the Keras row's own masks on them, and
that row runs only where TensorFlow and the model are there. This module
decides which case a run is in, scores each artifact against those masks when
they exist, and puts the outcome in words (the verdict's scope, and a gate
failure when the Keras model was there to judge and gave no masks), so no
report can let "passed" read as covering images nobody judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segedge.bench.accuracy import MaskSizeError, data_parity
from segedge.bench.child import KERAS
from segedge.bench.data import EvalSet


@dataclass
class DataVerdict:
    judged: bool  # the --data images were judged (the Keras model ran on them and gave masks)
    scope: str  # what the verdict covers, in one plain sentence (gate_scope)
    failures: list[str] = field(default_factory=list)  # gate failures of the judging itself


def gate_scope(reference: EvalSet, evaluation: EvalSet | None, judged: bool, why_not: str) -> str:
    """The images the verdict covers, in one plain sentence."""
    ref = f"the bundle's {len(reference)} reference images"
    if evaluation is None:
        return f"{ref} (no --data)"
    data = f"the {len(evaluation)} --data images ({evaluation.name})"
    if judged:
        return f"{ref} and {data}, each against the Keras model's masks"
    return (f"{ref} only: {data} were scored for mIoU but not judged, as there are no Keras masks for them "
            f"({why_not}); give the Keras model (--keras, --keras-model PATH) to judge them")


def judge_data(reference: EvalSet, evaluation: EvalSet | None, keras_ran: bool, keras_note: str,
               names: list[str], masks: dict[str, list[np.ndarray]], accuracy: dict[str, dict[str, Any]],
               rows: list[dict[str, Any]], errors: dict[str, str], num_classes: int) -> DataVerdict:
    """Score every artifact's ``--data`` masks against the Keras row's, where there are some.

    ``keras_ran``: the Keras row was run (a Keras model was found or given);
    ``keras_note``: why it was skipped otherwise. ``masks`` holds the --data
    masks per artifact (and "keras"). Fills ``accuracy[name]["data"]`` and the
    rows' ``data_agreement`` / ``data_miou_delta_pts``; a mask at the wrong
    size becomes that artifact's entry in ``errors``, which the gate reads next.
    """
    judged, why_not = False, keras_note.removeprefix("Keras row skipped: ") or "the Keras row did not run"
    failures = []
    if evaluation is not None and keras_ran:
        keras_masks = masks.get(KERAS)
        if keras_masks is None:
            why_not = f"the Keras row failed: {errors.get(KERAS) or 'no masks'}"
            # the Keras model was asked for (or found) to judge the user's images and gave no masks: no verdict
            failures.append(f"{KERAS}: {why_not}; the gate cannot judge the --data images without its masks")
        else:
            judged = True
            for name in names:
                if name in masks and name in accuracy:
                    try:
                        accuracy[name]["data"] = data_parity(evaluation, masks[name], keras_masks, num_classes)
                    except MaskSizeError as exc:
                        errors[name] = str(exc)
            for row in rows:  # the judged --data figures beside the reference set's, in every table
                data = accuracy.get(row["artifact"], {}).get("data")
                if data and not row["error"]:
                    row.update(data_agreement=data["agreement"], data_miou_delta_pts=data["miou_delta_pts"])
    return DataVerdict(judged, gate_scope(reference, evaluation, judged, why_not), failures)
