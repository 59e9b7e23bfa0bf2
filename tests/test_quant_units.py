"""Mechanics of the int8 report and float-fallback search, without TensorFlow (fast)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segedge.errors import ConfigError
from segedge.quant.fallback import Trial, coarse_ks, parse_k, search_smallest_k
from segedge.quant.report import (
    REPORT_JSON,
    REPORT_MD,
    REPORT_PNG,
    LayerError,
    QuantReport,
    _Stats,
    layer_name,
    sort_rows,
    write_report,
)


def _stub_search(drops: dict[int, float], bound: float, layers: int):
    calls: list[int] = []

    def evaluate(k: int) -> Trial:
        calls.append(k)
        return Trial(k, 0.5, drops[k], drops[k] <= bound)

    chosen, tried = search_smallest_k(evaluate, layers)
    return chosen, [t.k for t in tried], calls


def test_coarse_ks_doubles_and_ends_at_layer_count():
    assert coarse_ks(0) == [0]
    assert coarse_ks(1) == [0, 1]
    assert coarse_ks(10) == [0, 1, 2, 4, 8, 10]
    assert coarse_ks(16) == [0, 1, 2, 4, 8, 16]


@pytest.mark.parametrize("smallest", [0, 1, 2, 3, 5, 6, 8, 11, 13, 20])
def test_auto_stops_at_the_smallest_k_that_meets_the_bound(smallest):
    layers = 20
    drops = {k: (3.0 if k < smallest else 0.5) for k in range(layers + 1)}  # bound 1.0 met from `smallest` on
    chosen, tried, calls = _stub_search(drops, 1.0, layers)
    assert chosen == smallest
    assert len(calls) == len(set(calls)), "a K was evaluated twice"
    assert smallest in tried
    # nothing beyond the first K of the doubling sequence that met the bound is ever tried
    first_met = next(k for k in coarse_ks(layers) if k >= smallest)
    assert max(tried) == first_met


def test_auto_with_a_known_drop_sequence_tries_the_documented_ks():
    drops = {0: 4.0, 1: 3.1, 2: 2.5, 3: 1.8, 4: 1.4, 5: 0.9, 6: 0.7, 7: 0.6, 8: 0.4, 9: 0.3, 10: 0.1}
    chosen, tried, _ = _stub_search(drops, 1.0, 10)
    assert chosen == 5
    assert tried == [0, 1, 2, 4, 8, 6, 5]


def test_auto_reports_none_when_no_k_meets_the_bound():
    chosen, tried, _ = _stub_search({k: 2.0 for k in range(6)}, 1.0, 5)
    assert chosen is None
    assert tried == [0, 1, 2, 4, 5]


@pytest.mark.parametrize("value,expected", [("auto", "auto"), ("AUTO", "auto"), ("0", 0), ("7", 7), (3, 3)])
def test_parse_k(value, expected):
    assert parse_k(value) == expected


@pytest.mark.parametrize("value", ["-1", "some", "1.5", ""])
def test_parse_k_rejects_bad_values(value):
    with pytest.raises(ConfigError):
        parse_k(value)


def test_stats_rmse_and_correlation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    s = _Stats()
    s.add(x, x)
    assert s.rmse == 0 and s.correlation == pytest.approx(1.0)
    s = _Stats()
    s.add(x[:500], x[:500] + 0.1)
    s.add(x[500:], x[500:] + 0.1)
    assert s.rmse == pytest.approx(0.1) and s.mean_error == pytest.approx(0.1)
    assert s.correlation == pytest.approx(1.0)
    s = _Stats()
    s.add(x, -x)
    assert s.correlation == pytest.approx(-1.0)


def test_layer_name_strips_the_debug_suffix_digit():
    assert layer_name("model/conv/convolution1") == "model/conv/convolution"
    assert layer_name("StatefulPartitionedCall_1:02") == "StatefulPartitionedCall_1:0"
    assert layer_name("plain") == "plain"


def _rows(n: int) -> list[LayerError]:
    return [LayerError(name=f"layer{i}", op="CONV_2D", rmse=0.01 * i, scale=0.1, rmse_over_scale=0.1 * i,
                       correlation=1 - 0.01 * i) for i in range(n)]


def test_rows_sort_worst_first_and_report_round_trips(tmp_path):
    rows = sort_rows(_rows(20))
    assert [r.name for r in rows[:2]] == ["layer19", "layer18"]
    report = QuantReport(tflite=rows, onnx=_rows(3), samples={"count": 2, "ids": ["a", "b"]}, bundle="b")
    written = write_report(report, tmp_path)
    data = json.loads((tmp_path / REPORT_JSON).read_text())
    assert data["schema_version"] == 1 and len(data["tflite"]["layers"]) == 20
    assert QuantReport.from_dict(data).worst(3) == ["layer19", "layer18", "layer17"]
    assert (tmp_path / REPORT_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "layer19" in (tmp_path / REPORT_MD).read_text()
    assert set(written) == {"json", "md", "png"}
    assert not list(tmp_path.glob(".segedge-tmp-*"))
