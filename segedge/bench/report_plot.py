"""``latency_vs_miou.png``: the trade-off a deployer picks from, one labelled point per artifact.

matplotlib comes from the optional ``bench`` extra; without it the plot is
skipped and the report says so (bench itself still runs in the edge install).
"""

from __future__ import annotations

from typing import Any

from segedge.plotting import figure_png, png_canvas

RUNTIME_MARKERS = {"tflite": "o", "onnx": "s", "keras": "*"}


def plot_latency_vs_miou(rows: list[dict[str, Any]], title: str = "") -> bytes | None:
    """PNG bytes, or None when there is nothing to plot (no row with both numbers).

    Each artifact is one series over the thread counts (joined by a line), so
    the sweep is visible; the label sits at its fastest point.
    """
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("p50_ms") and row.get("miou") is not None and not row.get("error"):
            series.setdefault(row["artifact"], []).append(row)
    if not series:
        return None
    with png_canvas((7.5, 4.8), 110) as (figure, axes):
        for index, (name, points) in enumerate(series.items()):
            points = sorted(points, key=lambda r: r["threads"])
            xs = [r["p50_ms"] for r in points]
            ys = [100.0 * r["miou"] for r in points]
            marker = RUNTIME_MARKERS.get(points[0]["runtime"], "o")
            line = axes.plot(xs, ys, marker=marker, markersize=9 if marker == "*" else 6, linewidth=0.8,
                             label=f"{name} ({points[0]['runtime']})")[0]
            fastest = min(points, key=lambda r: r["p50_ms"])
            threads = "/".join(str(r["threads"]) for r in points)
            axes.annotate(f"{name} [{threads} thr]", (fastest["p50_ms"], 100.0 * fastest["miou"]),
                          textcoords="offset points", xytext=(5, 5 if index % 2 else -11), fontsize=8,
                          color=line.get_color())
        axes.set_xlabel("latency p50, ms (batch 1; lower is better)")
        axes.set_ylabel("mIoU, % (higher is better)")
        axes.set_title(title or "latency vs mIoU")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7, loc="best")
        return figure_png(figure)
