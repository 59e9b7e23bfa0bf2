"""The combined report of a several-bundle bench: report.json, report.md and frontier.png in R.

Each bundle's own report (rows, gate, gallery) is in ``R/<name>/``; these files
put every artifact of every bundle side by side, mark the frontier and answer
``--budget-ms``. Written atomically, each recorded in R's marker once written.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import segedge
from segedge.bench.multi import JSON_NAME, MD_NAME, PLOT_NAME, MultiResult, budget_line, budget_summary, model_size
from segedge.bench.report_table import machine_lines
from segedge.util import fileio
from segedge.util.plotting import figure_png, matplotlib_available, png_canvas

SCHEMA_VERSION = 1
HEADERS = ("bundle", "encoder", "width", "input", "artifact", "threads", "p50 ms", "mIoU %", "size MB", "peak RSS MB",
           "gate", "frontier")
# The terminal's names where the Markdown's are too wide for 80 columns.
TERMINAL_HEADERS = {"encoder": "enc", "width": "w", "threads": "thr", "size MB": "MB", "peak RSS MB": "RSS MB"}


def _num(value: Any, digits: int = 2, scale: float = 1.0) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "n/a"
    return f"{value * scale:.{digits}f}"


def table_rows(multi: MultiResult) -> list[dict[str, Any]]:
    """One dict per point, in bundle order then the bundle's own row order: what the table and JSON show."""
    rows = []
    for item in multi.benched:
        size = model_size(item.planned.manifest)
        passed = item.result.passed
        for point in multi.points:
            if point.info["bundle"] != item.planned.name:
                continue
            row = point.info["row"]
            rows.append({"bundle": item.planned.name, "encoder": size["encoder"],
                         "encoder_width": size["encoder_width"], "input": size["input"],
                         "artifact": row["artifact"], "threads": point.threads, "p50_ms": point.latency_ms,
                         "miou": point.miou, "size_mb": row.get("size_mb"), "peak_rss_mb": row.get("peak_rss_mb"),
                         "gate_passed": passed, "frontier": point.key in multi.on_frontier,
                         "chosen": multi.chosen is not None and point.key == multi.chosen.key,
                         "error": row.get("error")})
    return rows


def encoder_label(encoder: Any) -> str:
    """'mobilenet_v3_small' -> 'v3-small' for a table column; '?' where the bundle does not say."""
    return encoder.replace("mobilenet_", "").replace("_", "-") if isinstance(encoder, str) and encoder else "?"


def cells(row: dict[str, Any]) -> list[str]:
    width = row["encoder_width"]
    return [row["bundle"], encoder_label(row.get("encoder")), str(width) if isinstance(width, (int, float)) else "?",
            row["input"], row["artifact"],
            str(row["threads"]), _num(row["p50_ms"]), _num(row["miou"], scale=100.0), _num(row["size_mb"], 1),
            _num(row["peak_rss_mb"], 0), "passed" if row["gate_passed"] else "FAILED",
            ("chosen" if row["chosen"] else "yes") if row["frontier"] else ""]


def eval_basis(multi: MultiResult) -> str:
    """Which images every mIoU here was measured on (the same for every bundle, or bench refused)."""
    first = multi.benched[0].result
    if first.config.data is not None:
        return f"mIoU on the --data images ({first.config.data}), the same for every bundle"
    return f"mIoU on the reference set ({len(first.reference)} images), the same ids in every bundle"


def report_dict(multi: MultiResult) -> dict[str, Any]:
    first = multi.benched[0].result
    return {
        "schema_version": SCHEMA_VERSION, "tool": "segedge bench (several bundles)",
        "segedge_version": segedge.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "bundles": [{"name": b.planned.name, "bundle": str(b.planned.bundle.resolve()),
                     "report": f"{b.planned.name}/{JSON_NAME}", "model": model_size(b.planned.manifest),
                     "gate": {"passed": b.result.passed, "failures": b.result.gate_failures}}
                    for b in multi.benched],
        "eval": eval_basis(multi), "threads": first.config.threads,
        "frontier_rule": "per thread count: artifacts no other is at least as fast and as accurate as, and "
                         "strictly better on one (p50 ms, mIoU); the Keras rows are left out",
        "rows": _clean(table_rows(multi)),
        "budget": _clean(budget_summary(multi)),
        "machine": first.machine,
        "timing_warnings": [f"{b.planned.name}: {w}" for b in multi.benched for w in b.result.warnings],
        "files": dict(multi.files),
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def render_markdown(multi: MultiResult) -> str:
    first = multi.benched[0].result
    out = ["# segedge bench: several bundles", "",
           f"{len(multi.benched)} bundles, {eval_basis(multi)}; latency p50 of the runtime call alone, batch 1, "
           f"threads {', '.join(map(str, first.config.threads))}, every row in its own process. "
           "Frontier (per thread count): no other artifact is at least as fast and as accurate and better on "
           "one. Each bundle's own report, gate and gallery: `<bundle>/report.md`.", ""]
    if multi.budget_ms is not None:
        out += [f"**{budget_line(multi)}**", ""]
    left = ("bundle", "encoder", "input", "artifact", "gate", "frontier")
    out += ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(":---" if h in left else "---:" for h in HEADERS) + "|"]
    out += ["| " + " | ".join(cells(row)) + " |" for row in table_rows(multi)]
    out += ["", "## Parity gate, per bundle", ""]
    for item in multi.benched:
        verdict = "passed" if item.result.passed else "FAILED"
        out.append(f"- [{item.planned.name}]({item.planned.name}/{MD_NAME}): {verdict}")
        out += [f"  - {line}" for line in item.result.gate_failures]
    out += ["", "## Latency vs mIoU", ""]
    out.append(f"![frontier]({PLOT_NAME})" if multi.files.get("plot") else "(plot not drawn: matplotlib missing, "
               "--no-plot, or no artifact has both a latency and an mIoU)")
    out += ["", "## Machine", ""] + [f"- {line}" for line in machine_lines(first.machine)]
    return "\n".join(out) + "\n"


def plot_frontier(multi: MultiResult) -> bytes | None:
    """Latency (log x) vs mIoU %, one colour per bundle, hollow = fewest threads, the frontier joined per
    thread count, the budget as a vertical line and the pick ringed."""
    usable = [p for p in multi.points if p.usable]
    if not usable:
        return None
    names = [b.planned.name for b in multi.benched]
    fewest = min(p.threads for p in usable)
    with png_canvas((7.5, 5.0), 120) as (figure, axes):
        colours = [f"C{i % 10}" for i in range(len(names))]
        for name, colour in zip(names, colours, strict=True):
            for point in (p for p in usable if p.info["bundle"] == name):
                filled = point.threads != fewest
                axes.scatter([point.latency_ms], [100 * point.miou], s=36, marker="o",
                             facecolors=colour if filled else "none", edgecolors=colour, zorder=3)
            axes.scatter([], [], marker="o", color=colour, label=name)
        for threads in sorted({p.threads for p in usable}):
            line = sorted((p for p in usable if p.threads == threads and p.key in multi.on_frontier),
                          key=lambda p: p.latency_ms)
            axes.step([p.latency_ms for p in line], [100 * p.miou for p in line], where="post", color="0.3",
                      linestyle="-" if threads != fewest else "--", linewidth=1, zorder=2,
                      label=f"frontier, {threads} thread{'s' * (threads > 1)}")
        if multi.budget_ms is not None:
            axes.axvline(multi.budget_ms, color="red", linestyle=":", linewidth=1,
                         label=f"budget {multi.budget_ms:g} ms")
        if multi.chosen is not None:
            axes.scatter([multi.chosen.latency_ms], [100 * multi.chosen.miou], s=220, facecolors="none",
                         edgecolors="red", linewidths=1.5, zorder=4, label="chosen")
        axes.set_xscale("log")
        from matplotlib.ticker import FuncFormatter  # a log axis labels 2 ms as "2x10^0" by default

        def plain(value: float, _position: int) -> str:  # 1, 2, 3, 5 of each decade: readable, never crowded
            return f"{value:g}" if f"{value:e}"[0] in "1235" else ""

        axes.xaxis.set_major_formatter(FuncFormatter(plain))
        axes.xaxis.set_minor_formatter(FuncFormatter(plain))
        axes.set_xlabel(f"p50 latency, ms (log; hollow = {fewest} thread{'s' * (fewest > 1)})")
        axes.set_ylabel("mIoU %")
        axes.set_title("latency vs mIoU: every bundle's artifacts")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7, loc="best")
        return figure_png(figure)


def write_combined(multi: MultiResult, target, plot: bool = True) -> list[str]:
    """frontier.png (when asked and drawable), report.json and report.md into R; returns the names written."""
    written = []
    png = plot_frontier(multi) if plot and matplotlib_available() else None
    if png is not None:
        fileio.write_bytes(multi.out / PLOT_NAME, png)
        target.record([PLOT_NAME])
        written.append(PLOT_NAME)
        multi.files["plot"] = PLOT_NAME
    multi.files.update(json=JSON_NAME, markdown=MD_NAME)
    fileio.write_json(multi.out / JSON_NAME, report_dict(multi))
    target.record([JSON_NAME])
    written.append(JSON_NAME)
    fileio.write_text(multi.out / MD_NAME, render_markdown(multi))
    target.record([MD_NAME])
    return [*written, MD_NAME]

