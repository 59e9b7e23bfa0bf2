"""The bench plot and gallery strips people read: axis range, label de-overlap, hollow/filled thread points,
strip geometry and the class legend. Fast: no model, synthetic rows and masks."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image

from segedge.bench.gallery import ENTRY_HEIGHT, LABEL_HEIGHT, classes_present, legend_layout, render_strip
from segedge.bench.report_plot import draw_latency_vs_miou, plot_latency_vs_miou, spread_labels, y_limits
from segedge.contract.labels import VOID
from segedge.util.plotting import png_canvas

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def crowded_rows() -> list[dict]:
    """Seven artifacts whose mIoU differ by at most 0.05 points, at 1 and 4 threads."""
    rows = []
    for i, (name, runtime) in enumerate([("fp32", "tflite"), ("fp16", "tflite"), ("dynamic", "tflite"),
                                         ("int8", "tflite"), ("onnx", "onnx"), ("onnx-int8", "onnx"),
                                         ("keras", "keras")]):
        for threads, scale in ((1, 1.0), (4, 0.4)):
            rows.append({"artifact": name, "runtime": runtime, "threads": threads, "p50_ms": (10.0 + i) * scale,
                         "miou": 0.6500 + 0.0005 * (i % 2)})  # 65.00 % or 65.05 %
    return rows


def test_plot_is_a_png_and_none_without_data():
    png = plot_latency_vs_miou(crowded_rows(), "t", keras_miou=0.65, max_drop_pts=1.0)
    assert png[:8] == PNG_MAGIC
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    assert plot_latency_vs_miou([{"artifact": "x", "runtime": "tflite", "threads": 1, "p50_ms": 1.0,
                                  "miou": None}]) is None


def test_y_limits_span_the_gate_bound_not_the_noise():
    low, high = y_limits([65.00, 65.05], keras_pct=65.05, max_drop_pts=1.0)
    assert low <= 64.05 and high >= 65.05 + 0.5  # Keras - max drop .. Keras + margin
    assert high - low >= 1.0
    # A point below the bound stays on the plot.
    low, _ = y_limits([60.0, 65.0], keras_pct=65.0, max_drop_pts=1.0)
    assert low < 60.0
    # No gate: still at least a point wide around near-equal values.
    low, high = y_limits([65.00, 65.05])
    assert high - low >= 1.0 and low < 65.0 and high > 65.05


def test_drawn_axes_span_the_gate_and_show_both_thread_styles():
    with png_canvas((9.5, 4.8), 110) as (figure, axes):
        labels = draw_latency_vs_miou(figure, axes, crowded_rows(), "t", keras_miou=0.6505, max_drop_pts=1.0)
        low, high = axes.get_ylim()
        assert low <= 65.05 - 1.0 and high >= 65.05 + 0.5
        assert len(labels) == 7
        dashed = [line for line in axes.get_lines() if line.get_linestyle() == "--"]
        assert [line.get_ydata()[0] for line in dashed] == [pytest.approx(64.05)]
        faces = [line.get_markerfacecolor() for line in axes.get_lines() if line.get_linestyle() == "None"]
        hollow = [f for f in faces if isinstance(f, str) and f == "none"]
        assert len(hollow) == 7 and len(faces) == 14  # one hollow 1-thread point and one filled per artifact
        legend = [t.get_text() for t in axes.get_legend().get_texts()]
        assert "hollow: 1 thread" in legend and "filled: 4 threads" in legend
        assert any(t.startswith("gate bound") for t in legend) and any(t.startswith("Keras mIoU") for t in legend)
        # Rendered label boxes do not overlap, even though the points almost coincide.
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        from matplotlib.text import Text

        boxes = [Text.get_window_extent(label, renderer) for label in labels]  # the text, not its leader line
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)


@pytest.mark.parametrize("positions", [[0.5] * 8, [0.5, 0.501, 0.502, 0.9, 0.9], [0.99, 0.98, 0.97], [0.0, 0.01],
                                       [0.3, 0.1, 0.2, 0.1]])
def test_spread_labels_keeps_them_apart_and_in_the_band(positions):
    gap = 0.06
    placed = spread_labels(positions, gap=gap, band=(0.04, 0.96))
    assert len(placed) == len(positions)
    for a, b in itertools.combinations(placed, 2):
        assert abs(a - b) >= gap - 1e-9
    assert all(0.04 - 1e-9 <= p <= 0.96 + 1e-9 for p in placed)
    # Order by height is kept (ties by input order): a label never jumps over another.
    order_in = sorted(range(len(positions)), key=lambda i: (positions[i], i))
    assert sorted(range(len(placed)), key=lambda i: placed[i]) == order_in


def test_single_thread_sweep_has_no_filled_legend_entry():
    rows = [r for r in crowded_rows() if r["threads"] == 1]
    with png_canvas((9.5, 4.8), 110) as (figure, axes):
        draw_latency_vs_miou(figure, axes, rows, "t", keras_miou=0.65, max_drop_pts=1.0)
        legend = [t.get_text() for t in axes.get_legend().get_texts()]
        assert "hollow: 1 thread" in legend and not any(t.startswith("filled") for t in legend)


def test_spread_labels_leaves_separated_labels_alone_and_is_deterministic():
    assert spread_labels([0.2, 0.5, 0.8], gap=0.06) == [0.2, 0.5, 0.8]
    assert spread_labels([0.5] * 5) == spread_labels([0.5] * 5)


def test_spread_labels_shrinks_the_gap_when_too_many_labels():
    placed = spread_labels([0.5] * 30, gap=0.06, band=(0.0, 1.0))
    steps = np.diff(sorted(placed))
    assert np.allclose(steps, 1.0 / 29) and min(placed) >= 0.0 and max(placed) <= 1.0 + 1e-9


def _table() -> np.ndarray:
    table = np.zeros((256, 3), np.uint8)  # saturated colours no text anti-aliasing can produce
    table[0], table[1], table[2], table[3], table[VOID] = (0, 0, 200), (200, 0, 0), (0, 200, 0), (200, 0, 200), \
        (0, 200, 200)
    return table


def test_strip_keeps_panel_size_and_adds_a_legend_band_for_present_classes():
    height, width = 48, 40
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    truth = np.zeros((height, width), np.uint8)
    truth[5:20, 5:20] = 1
    keras = truth.copy()
    artifact = truth.copy()
    artifact[30:40, 10:30] = 2  # class 2 only in the artifact; class 3 nowhere
    table = _table()
    names = ["background", "cat", "dog", "bird"]
    strip = render_strip(image, truth, keras, {"int8": artifact}, 4, table, names)
    assert classes_present([truth, keras, artifact], 4) == [0, 1, 2]
    labels = ["background", "cat", "dog"]
    _, band = legend_layout(labels, strip.width - 4)
    assert band >= ENTRY_HEIGHT
    assert strip.height == LABEL_HEIGHT + height + band
    pixels = np.asarray(strip)
    # The first panel is the image itself, pixel for pixel, at its own size.
    assert np.array_equal(pixels[LABEL_HEIGHT:LABEL_HEIGHT + height, :width], image)
    # Every mask panel is exactly width wide: its coloured columns end where the white gap begins.
    legend_band = pixels[LABEL_HEIGHT + height:]
    for index in (0, 1, 2):
        swatch = np.all(legend_band == table[index], axis=-1).sum()
        assert swatch == 100, (index, swatch)  # one 10x10 swatch each
    for absent in (3, VOID):
        assert not np.all(legend_band == table[absent], axis=-1).any()


def test_strip_panels_are_image_width_and_legend_wraps():
    height, width = 64, 64
    image = np.full((height, width, 3), 90, np.uint8)
    truth = np.arange(height * width, dtype=np.int64).reshape(height, width) % 4
    truth = truth.astype(np.uint8)
    table = _table()
    long_names = ["a background with a long name", "cat of a long name", "dog with a long name", "bird long"]
    strip = render_strip(image, truth, truth, {}, 4, table, long_names)
    pixels = np.asarray(strip)
    panel_rows = pixels[LABEL_HEIGHT:LABEL_HEIGHT + height]
    truth_rgb = table[truth]
    # The ground-truth panel sits somewhere right of the image, at exactly the image's size.
    starts = [x for x in range(width, strip.width - width + 1)
              if np.array_equal(panel_rows[:, x:x + width], truth_rgb)]
    assert starts, "ground-truth panel not found at the image's size"
    assert not np.array_equal(panel_rows[:, starts[0]:starts[0] + width + 1][:, -1], truth_rgb[:, 0])
    positions, band = legend_layout(long_names, strip.width - 4)
    rows = {y for _, y in positions}
    assert len(rows) > 1 and band == max(rows) + ENTRY_HEIGHT + 4  # wrapped onto several rows
    assert strip.height == LABEL_HEIGHT + height + band


def test_legend_layout_wraps_to_width():
    positions, band = legend_layout(["x" * 10] * 6, 200)
    assert all(x + 10 + 4 <= 200 or x == 0 for x, _ in positions)
    assert positions[0] == (0, 0) and len({y for _, y in positions}) >= 2
    assert legend_layout([], 200) == ([], 0)
