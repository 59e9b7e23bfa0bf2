"""The parity gate: does every converted model still match the original closely enough?

Bounds are stated in the units people reason in: a drop of at most N mIoU
points against the Keras masks, and a minimum fraction of pixels that agree
with Keras, per artifact (``int8=0.97`` overrides the default for one format).
They are applied to the bundle's reference set and, when bench ran the Keras
model on ``--data`` images, to those images too: a fault that shows only on a
user's photos must not pass on the reference set's shapes. An artifact that
could not be measured fails the gate: a release pipeline must not pass on a
model it never ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from segedge.contract.manifest import MANIFEST_NAME, Manifest
from segedge.util.errors import ConfigError

DEFAULT_MAX_MIOU_DROP = 1.0
DEFAULT_MIN_AGREEMENT = 0.98


@dataclass(frozen=True)
class GateBounds:
    max_miou_drop: float = DEFAULT_MAX_MIOU_DROP  # mIoU points below Keras
    min_agreement: float = DEFAULT_MIN_AGREEMENT  # fraction of pixels
    min_agreement_for: dict[str, float] = field(default_factory=dict)

    def agreement_bound(self, artifact: str) -> float:
        return self.min_agreement_for.get(artifact, self.min_agreement)

    def to_dict(self) -> dict:
        return {"max_miou_drop_pts": self.max_miou_drop, "min_agreement": self.min_agreement,
                "min_agreement_for": dict(self.min_agreement_for)}


def _fraction(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not a number; give a fraction such as 0.98") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{option}: {value} is not a fraction between 0 and 1 (0.98 means 98 %)")
    return value


def parse_min_agreement(values: Iterable[str], known: Iterable[str]) -> tuple[float, dict[str, float]]:
    """``["0.99", "int8=0.97"]`` -> (default 0.99, {"int8": 0.97}); names must be known formats."""
    known = set(known)
    default, per_format = DEFAULT_MIN_AGREEMENT, {}
    for value in values:
        if "=" in value:
            name, _, number = value.partition("=")
            name = name.strip()
            if name not in known:
                raise ConfigError(f"--min-agreement {value}: unknown format {name!r}; choose from "
                                  + ", ".join(sorted(known)))
            per_format[name] = _fraction(number.strip(), f"--min-agreement {name}")
        else:
            default = _fraction(value.strip(), "--min-agreement")
    return default, per_format


def class_mismatch(manifest: Manifest, classes: Sequence[str], palette: Sequence[Sequence[int]]) -> str:
    """Why the manifest's class names / palette differ from those the reference set recorded at export; "" if not.

    The masks an artifact predicts are class indices: a manifest whose class
    order changed after export scores exactly as before while every label a
    user reads is wrong, so the gate compares the labels themselves.
    """
    if list(manifest.classes) != list(classes):
        changed = [i for i in range(max(len(classes), len(manifest.classes)))
                   if i >= len(classes) or i >= len(manifest.classes) or classes[i] != manifest.classes[i]]
        shown = ", ".join(f"{i}: {manifest.classes[i] if i < len(manifest.classes) else '-'!r} "
                          f"(reference set: {classes[i] if i < len(classes) else '-'!r})" for i in changed[:4])
        return (f"{MANIFEST_NAME} class names differ from the reference set's at index {shown}; "
                "the manifest was edited after export: re-export the bundle")
    want = [list(map(int, rgb[:3])) for rgb in palette]
    have = [list(map(int, rgb[:3])) for rgb in manifest.palette[: len(want)]]
    if want and have != want:
        changed = [i for i, (a, b) in enumerate(zip(have, want, strict=False)) if a != b]
        return (f"{MANIFEST_NAME} palette differs from the reference set's at class index "
                f"{', '.join(map(str, changed[:4])) or len(have)}; re-export the bundle")
    return ""


def _problems(acc: Mapping, bounds: GateBounds, name: str) -> list[str]:
    """The bounds one set of figures breaks (mIoU drop, agreement), each with its value and bound."""
    problems = []
    # None: the images have no masks, so the gate checks agreement only
    drop = None if acc.get("miou_delta_pts") is None else -acc["miou_delta_pts"]
    if drop is not None and drop > bounds.max_miou_drop:
        problems.append(f"mIoU {100 * acc['miou_reference']:.2f} % is {drop:.2f} points below Keras "
                        f"{100 * acc['keras_miou_reference']:.2f} % (bound: at most {bounds.max_miou_drop:g} "
                        "points)")
    bound = bounds.agreement_bound(name)
    if acc["agreement"] < bound:
        problems.append(f"agreement with Keras {100 * acc['agreement']:.2f} % (bound: at least {100 * bound:.2f} %)")
    return problems


def evaluate_gate(artifacts: Iterable[str], accuracy: Mapping[str, dict | None],
                  errors: Mapping[str, str], bounds: GateBounds, labels_problem: str = "") -> list[str]:
    """One line per failing artifact: the artifact, the measured value and the bound it broke.

    ``labels_problem`` (``class_mismatch``) fails every artifact: each one would be run with wrong labels.
    """
    failures = []
    for name in artifacts:
        if labels_problem:
            failures.append(f"{name}: {labels_problem}")
            continue
        if errors.get(name):
            failures.append(f"{name}: not measured ({errors[name]})")
            continue
        acc = accuracy.get(name)
        if acc is None:
            failures.append(f"{name}: no accuracy figures (predictions failed)")
            continue
        problems = _problems(acc, bounds, name)
        data = acc.get("data")
        if data:  # the --data images, judged against the live Keras model's masks on them
            problems = [f"on the reference set: {text}" for text in problems]
            where = f"on the --data images ({data['images']}, {data['eval_set']}): "
            problems += [where + text for text in _problems(
                {"miou_delta_pts": data["miou_delta_pts"], "miou_reference": data["miou"],
                 "keras_miou_reference": data["keras_miou"], "agreement": data["agreement"]}, bounds, name)]
        if problems:
            failures.append(f"{name}: " + "; ".join(problems))
    return failures
