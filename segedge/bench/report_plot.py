"""``latency_vs_miou.png``: the trade-off a deployer picks from, one labelled series per artifact.

matplotlib comes from the optional ``bench`` extra; without it the plot is
skipped and the report says so (bench itself still runs in the edge install).

Readability rules, because a plot people misread is worse than none:
- 1-thread points are hollow, the highest thread count filled, so the two
  regimes are told apart at a glance (a legend entry says so);
- labels are spread apart vertically (``spread_labels``) and joined to their
  point by a leader line, so no two labels overlap however close the points are;
- the y-range always spans the gate's bound (``y_limits``), so 0.05 points of
  noise between formats does not look like a cliff.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from segedge.util.plotting import figure_png, png_canvas

RUNTIME_MARKERS = {"tflite": "o", "onnx": "s", "keras": "*"}
LABEL_GAP = 0.055  # axes fraction between label centres: one 8 pt line in a 4.8 in tall figure, with air
LABEL_BAND = (0.04, 0.96)  # labels stay inside the axes
MIN_SPAN_PTS = 1.0  # without a gate bound, never show less than one mIoU point
PAD_FRACTION = 0.08


def y_limits(values_pct: Sequence[float], keras_pct: float | None = None,
             max_drop_pts: float | None = None) -> tuple[float, float]:
    """(low, high) mIoU % for the y-axis.

    With a Keras mIoU and a gate bound the range covers at least
    ``keras - max_drop .. keras + max(max_drop / 2, 0.5)``: differences are read
    against the tolerance the gate allows, not against the noise between formats.
    Without them the range is at least ``MIN_SPAN_PTS`` wide around the values.
    """
    values = [float(v) for v in values_pct]
    if keras_pct is not None:
        values.append(float(keras_pct))
    if not values:
        raise ValueError("no mIoU values to scale the axis to")
    low, high = min(values), max(values)
    if keras_pct is not None and max_drop_pts is not None:
        low = min(low, keras_pct - max_drop_pts)
        high = max(high, keras_pct + max(max_drop_pts / 2.0, 0.5))
    if high - low < MIN_SPAN_PTS:
        middle = (high + low) / 2.0
        low, high = middle - MIN_SPAN_PTS / 2.0, middle + MIN_SPAN_PTS / 2.0
    pad = PAD_FRACTION * (high - low)
    return low - pad, high + pad


def spread_labels(positions: Sequence[float], gap: float = LABEL_GAP,
                  band: tuple[float, float] = LABEL_BAND) -> list[float]:
    """Label heights (axes fraction, same order as ``positions``) at least ``gap`` apart inside ``band``.

    Deterministic: sort by height (ties by index), push each label up until it
    clears the one below, then push the stack back down from the top of the band
    and up from its bottom. Each label moves as little as this simple sweep
    allows. When ``len * gap`` exceeds the band, the gap shrinks to fit.
    """
    count = len(positions)
    if count == 0:
        return []
    bottom, top = band
    gap = min(gap, (top - bottom) / max(count - 1, 1))
    order = sorted(range(count), key=lambda i: (positions[i], i))
    placed = [min(max(float(positions[i]), bottom), top) for i in order]
    for k in range(1, count):
        placed[k] = max(placed[k], placed[k - 1] + gap)
    placed[-1] = min(placed[-1], top)
    for k in range(count - 2, -1, -1):
        placed[k] = min(placed[k], placed[k + 1] - gap)
    placed[0] = max(placed[0], bottom)
    for k in range(1, count):
        placed[k] = max(placed[k], placed[k - 1] + gap)
    out = [0.0] * count
    for k, index in enumerate(order):
        out[index] = placed[k]
    return out


def _series(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    series: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("p50_ms") and row.get("miou") is not None and not row.get("error"):
            series.setdefault(row["artifact"], []).append(row)
    return {name: sorted(points, key=lambda r: r["threads"]) for name, points in series.items()}


def draw_latency_vs_miou(figure: Any, axes: Any, rows: list[dict[str, Any]], title: str = "",
                         keras_miou: float | None = None, max_drop_pts: float | None = None) -> list[Any]:
    """Draw onto ``axes``; returns the label ``Text`` objects (empty when nothing has both numbers).

    ``keras_miou`` is a fraction (as in the rows), ``max_drop_pts`` the gate's
    bound in mIoU points; with both, the Keras line and the dashed bound are drawn.
    """
    from matplotlib.lines import Line2D

    series = _series(rows)
    if not series:
        return []
    top_threads = max(r["threads"] for points in series.values() for r in points)
    keras_pct = None if keras_miou is None else 100.0 * keras_miou
    handles: list[Any] = []
    fastest: dict[str, tuple[float, float, str, str]] = {}
    for name, points in series.items():
        xs = [r["p50_ms"] for r in points]
        ys = [100.0 * r["miou"] for r in points]
        marker = RUNTIME_MARKERS.get(points[0]["runtime"], "o")
        size = 11 if marker == "*" else 7
        line = axes.plot(xs, ys, linewidth=0.9, label=f"{name} ({points[0]['runtime']})")[0]
        colour = line.get_color()
        for r, x, y in zip(points, xs, ys, strict=True):
            face = "none" if r["threads"] == 1 else colour
            alpha = 1.0 if r["threads"] in (1, top_threads) else 0.45
            axes.plot([x], [y], linestyle="none", marker=marker, markersize=size, markeredgecolor=colour,
                      markerfacecolor=face, markeredgewidth=1.4, alpha=alpha)
        handles.append(Line2D([], [], color=colour, marker=marker, markersize=size, linewidth=0.9,
                              label=f"{name} ({points[0]['runtime']})"))
        best = min(points, key=lambda r: r["p50_ms"])
        threads = "/".join(str(r["threads"]) for r in points)
        fastest[name] = (best["p50_ms"], 100.0 * best["miou"], colour, f"{name} [{threads} thr]")
    handles.append(Line2D([], [], color="0.3", marker="o", markerfacecolor="none", linestyle="none",
                          label="hollow: 1 thread"))
    if top_threads > 1:  # with a single thread count there is nothing filled to explain
        handles.append(Line2D([], [], color="0.3", marker="o", linestyle="none",
                              label=f"filled: {top_threads} threads"))

    values = [100.0 * r["miou"] for points in series.values() for r in points]
    low, high = y_limits(values, keras_pct, max_drop_pts)
    axes.set_ylim(low, high)
    if keras_pct is not None:
        handles.append(axes.axhline(keras_pct, color="0.15", linewidth=1.0,
                                    label=f"Keras mIoU {keras_pct:.2f} %"))
        if max_drop_pts is not None:
            handles.append(axes.axhline(keras_pct - max_drop_pts, color="tab:red", linewidth=1.0, linestyle="--",
                                        label=f"gate bound: Keras − {max_drop_pts:g} pts"))
    x_low, x_high = axes.get_xlim()
    x_pad = 0.25 * (x_high - x_low)  # room on the right for the labels
    axes.set_xlim(x_low, x_high + x_pad)
    x_low, x_high = axes.get_xlim()

    heights = spread_labels([(y - low) / (high - low) for _, y, _, _ in fastest.values()])
    labels = []
    for (x, y, colour, text), height in zip(fastest.values(), heights, strict=True):
        x_frac = (x - x_low) / (x_high - x_low)
        left = x_frac < 0.6  # labels of slow artifacts go to their left, staying inside the axes
        labels.append(axes.annotate(
            text, (x, y), xycoords="data", xytext=(x_frac + (0.04 if left else -0.04), height),
            textcoords="axes fraction", fontsize=8, color=colour, va="center", ha="left" if left else "right",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
            arrowprops={"arrowstyle": "-", "color": colour, "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3}))
    axes.set_xlabel("latency p50, ms (batch 1; lower is better)")
    axes.set_ylabel("mIoU, % (higher is better)")
    axes.set_title(title or "latency vs mIoU")
    axes.grid(True, alpha=0.3)
    axes.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return labels


def plot_latency_vs_miou(rows: list[dict[str, Any]], title: str = "", keras_miou: float | None = None,
                         max_drop_pts: float | None = None) -> bytes | None:
    """PNG bytes, or None when there is nothing to plot (no row with both numbers).

    Each artifact is one series over the thread counts (joined by a line), so
    the sweep is visible; the label sits at its fastest point.
    """
    with png_canvas((9.5, 4.8), 110) as (figure, axes):
        if not draw_latency_vs_miou(figure, axes, rows, title, keras_miou, max_drop_pts):
            return None
        return figure_png(figure)
