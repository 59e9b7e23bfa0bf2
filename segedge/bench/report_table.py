"""The report's columns, defined once for report.md, report.html and the terminal table.

Units, the same in every output segedge prints: sizes and memory in MB
(10^6 bytes), mIoU and agreement in %, mIoU differences in points (of %).
report.json keeps raw values: ``miou``/``agreement`` fractions, ``size_mb``
and ``*_rss_mb`` in MB, ``miou_delta_pts`` in points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DASH = "–"
NOT_AVAILABLE = "n/a"  # mIoU of a bundle exported from images without masks


def _number(digits: int, scale: float = 1.0, suffix: str = "", missing: str = DASH) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return missing
        return f"{value * scale:.{digits}f}{suffix}"

    return fmt


def _signed(digits: int, missing: str = DASH) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return missing
        return f"{value:+.{digits}f}"

    return fmt


def _text(value: Any) -> str:
    return DASH if value is None else str(value)


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    fmt: Callable[[Any], str]
    compact: bool = False  # also in the terminal table
    numeric: bool = True
    short: str = ""  # header in the terminal table, which must fit 80 columns

    @property
    def short_header(self) -> str:
        return self.short or self.header

    def cell(self, row: dict[str, Any]) -> str:
        return self.fmt(row.get(self.key))


COLUMNS: tuple[Column, ...] = (
    Column("artifact", "artifact", _text, compact=True, numeric=False),
    Column("runtime", "runtime", _text, numeric=False),
    Column("dtype", "dtype", _text, numeric=False),
    Column("threads", "threads", _text, compact=True, short="thr"),
    Column("size MB", "size_mb", _number(1), compact=True, short="MB"),
    Column("init ms", "init_ms", _number(1)),
    Column("p50 ms", "p50_ms", _number(2), compact=True, short="p50 ms"),
    Column("throughput fps (batch 1)", "fps", _number(1)),
    Column("p90 ms", "p90_ms", _number(2)),
    Column("p99 ms", "p99_ms", _number(2)),
    Column("peak RSS MB", "peak_rss_mb", _number(0), compact=True, short="RSS MB"),
    Column("mIoU % (original size)", "miou", _number(2, 100.0, missing=NOT_AVAILABLE), compact=True,
           short="mIoU %"),
    Column("ΔmIoU points vs Keras", "miou_delta_pts", _signed(2, missing=NOT_AVAILABLE), compact=True,
           short="ΔmIoU pts"),
    Column("agreement % (non-void)", "agreement", _number(2, 100.0), compact=True, short="agree %"),
    Column("agreement % on --data", "data_agreement", _number(2, 100.0)),  # not in the 80-column terminal table
    Column("ΔmIoU points on --data", "data_miou_delta_pts", _signed(2, missing=NOT_AVAILABLE)),
    Column("speed-up vs fp32", "speedup_vs_fp32", _number(2, suffix="x"), compact=True, short="vs fp32"),
    Column("speed-up vs Keras", "speedup_vs_keras", _number(2, suffix="x")),
)

E2E_COLUMNS: tuple[Column, ...] = (
    Column("artifact", "artifact", _text, numeric=False),
    Column("threads", "threads", _text),
    Column("first ms", "first_ms", _number(1)),
    Column("mean ms", "mean_ms", _number(2)),
    Column("min ms", "min_ms", _number(2)),
    Column("std ms", "std_ms", _number(2)),
    Column("load ms", "e2e_load_ms", _number(2)),
    Column("preprocess ms", "e2e_preprocess_ms", _number(2)),
    Column("infer ms", "e2e_infer_ms", _number(2)),
    Column("postprocess ms", "e2e_postprocess_ms", _number(2)),
    Column("end-to-end ms", "e2e_total_ms", _number(2)),
    Column("base RSS MB", "base_rss_mb", _number(0)),
)


OPTIONAL_KEYS = ("speedup_vs_keras", "data_agreement", "data_miou_delta_pts")  # shown only where some row has one


def columns_for(rows: list[dict[str, Any]], columns: tuple[Column, ...] = COLUMNS,
                compact: bool = False) -> list[Column]:
    """Drop the Keras speed-up column when there is no Keras row to divide by, and the --data parity columns
    when the gate did not judge --data images."""
    present = {key for key in OPTIONAL_KEYS if any(r.get(key) is not None for r in rows)}
    return [c for c in columns if (not compact or c.compact) and (c.key not in OPTIONAL_KEYS or c.key in present)]


def fmt_percent(value: float | None, digits: int = 2) -> str:
    return _number(digits, 100.0)(value)


def _loads(values: Any) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "not readable"


def machine_lines(machine: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
    flags = ", ".join(machine.get("cpu_flags") or []) or "none of note"
    return [f"CPU: {machine.get('cpu_model')} ({machine.get('cores')} cores, {machine.get('usable_cores')} usable; "
            f"{flags})",
            f"Load average (1 / 5 / 15 min): {_loads(machine.get('load_average_before'))} before the run, "
            f"{_loads(machine.get('load_average_after'))} after",
            f"System: {machine.get('system')} {machine.get('machine')}, Python {machine.get('python')}",
            f"Versions: {versions}"]


def bounds_text(bounds: Any) -> str:
    """The gate's bounds in one line, as report.md and report.html both state them."""
    per_format = ", ".join(f"{k} ≥ {fmt_percent(v)} %" for k, v in bounds.min_agreement_for.items())
    return (f"mIoU drop ≤ {bounds.max_miou_drop:g} points; agreement ≥ {fmt_percent(bounds.min_agreement)} %"
            + (f" ({per_format})" if per_format else "") + ".")


def miou_basis_line(result: Any) -> str:
    """The terminal table's key to its mIoU columns: a figure without its basis is three figures for one model."""
    main = next((result.accuracy[n] for n in result.gated if n in result.accuracy), result.accuracy.get("keras", {}))
    if not getattr(result.reference, "has_truth", True) or main.get("miou") is None:
        return (f"agree %: every pixel vs the Keras masks on the {len(result.reference)} reference images "
                "(no ground truth: mIoU n/a)")
    return (f"mIoU %: {main.get('eval_set')} ({main.get('eval_images')} images) at each image's own resolution, "
            f"through the predict path; ΔmIoU and agree %: vs the Keras masks on the {len(result.reference)} "
            "reference images")


def miou_basis(result: Any) -> str:
    """What mIoU was measured on (which images, how many, at which resolution, the Keras figure), in plain text.

    One sentence for report.md and report.html alike, so a reader of either knows what the numbers mean.
    """
    keras = result.accuracy.get("keras", {})
    main = next((result.accuracy[n] for n in result.gated if n in result.accuracy), keras)
    if not getattr(result.reference, "has_truth", True):
        text = (f"No ground truth: the bundle was exported from images without masks, so mIoU on the reference set "
                f"is n/a and agreement (every pixel) with the Keras masks on the {len(result.reference)} reference "
                "images is what the gate checks")
        if main.get("miou") is not None:
            text += (f"; mIoU on {main.get('eval_set')} ({main.get('eval_images')} images) at each image's "
                     "original resolution")
        return text + "."
    keras_on_eval = keras.get("miou") if keras.get("eval_set") == main.get("eval_set") else None
    return (f"mIoU on {main.get('eval_set')} ({main.get('eval_images')} images, {result.manifest.num_classes} "
            "classes, void ignored) at each image's original resolution: one confusion matrix over the set (the VOC "
            f"protocol), every mask made by the predict path (upsample: {result.manifest.upsample})"
            + ("" if main.get("eval_set") == result.reference.name else
               f"; Keras there: {fmt_percent(keras_on_eval)} %" if keras_on_eval is not None else
               "; Keras there: not measured (no Keras row)")
            + ". ΔmIoU (points) and agreement (pixels whose ground truth is not void) vs the Keras masks on the "
            f"bundle's {len(result.reference)} reference images (Keras mIoU there: "
            f"{fmt_percent(keras.get('keras_miou_reference'))} %).")


def gate_scope_line(result: Any) -> str:
    """What the verdict covers: the reference set, and the --data images only where they were judged."""
    return f"The verdict covers {result.gate_scope}." if result.gate_scope else ""


def per_class_rows(result: Any) -> tuple[list[str], list[list[str]]]:
    """Class x (Keras, artifacts) IoU %, for classes present in any of them."""
    shown = [n for n in result.gated if n in result.accuracy]
    eval_set = result.accuracy[shown[0]]["eval_set"] if shown else None
    keras = result.accuracy.get("keras")
    names = (["keras"] if keras and keras["eval_set"] == eval_set else []) + shown
    table = []
    for index, cls in enumerate(result.manifest.classes):
        cells = [result.accuracy[n]["per_class_iou"][index] for n in names]
        if any(v is not None for v in cells):
            table.append([cls, *(fmt_percent(v, 1) for v in cells)])
    return names, table
