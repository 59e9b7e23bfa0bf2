"""Mechanics of the int8 report and the float-fallback search, without TensorFlow or a model (fast).

The search is driven by synthetic K -> drop curves, monotone and not, noisy
and not; every expectation is checked against the curve itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from segedge.quant.layers import ErrorStats, LayerError, sort_rows
from segedge.quant.report import REPORT_JSON, QuantReport
from segedge.quant.report_files import REPORT_MD, REPORT_PNG, write_report
from segedge.quant.scoring import drop_noise
from segedge.quant.search import LARGE_FRACTION, Trial, coarse_ks, parse_k, search_smallest_k
from segedge.quant.tflite_layers import layer_name
from segedge.util.errors import ConfigError


class Curve:
    """A synthetic objective: drop(K) and size ratio(K), counting every evaluation."""

    def __init__(self, drops, bound: float, ratios=None, allow_large: bool = False) -> None:
        self.drops, self.bound, self.allow_large = drops, bound, allow_large
        self.ratios = ratios or (lambda k: 0.25)
        self.calls: list[int] = []

    def __call__(self, k: int) -> Trial:
        self.calls.append(k)
        drop, ratio = float(self.drops(k)), float(self.ratios(k))
        return Trial(k, 0.5, drop, drop <= self.bound, size_ratio=ratio,
                     too_large=k > 0 and ratio >= LARGE_FRACTION and not self.allow_large)

    def acceptable(self, k: int) -> bool:
        large = k > 0 and self.ratios(k) >= LARGE_FRACTION and not self.allow_large
        return self.drops(k) <= self.bound and not large


def _check_search_promises(curve: Curve, layers: int) -> int | None:
    """What the search promises on ANY curve, checked against the curve (not the trials)."""
    chosen, tried = search_smallest_k(curve, layers)
    assert len(curve.calls) == len(set(curve.calls)), "a K was evaluated twice"
    assert [t.k for t in tried] == curve.calls
    assert all(0 <= k <= layers for k in curve.calls)
    if chosen is None:
        # every K tried was unacceptable
        assert not any(curve.acceptable(k) for k in curve.calls)
    else:
        assert curve.acceptable(chosen)
        if chosen > 0:  # a boundary: the K below was measured and is not acceptable
            assert chosen - 1 in curve.calls and not curve.acceptable(chosen - 1)
        assert all(not curve.acceptable(k) for k in curve.calls if k < chosen and k in coarse_ks(layers))
    return chosen


def test_coarse_ks_doubles_and_ends_at_layer_count():
    assert coarse_ks(0) == [0]
    assert coarse_ks(1) == [0, 1]
    assert coarse_ks(10) == [0, 1, 2, 4, 8, 10]
    assert coarse_ks(16) == [0, 1, 2, 4, 8, 16]


@pytest.mark.parametrize("smallest", [0, 1, 2, 3, 5, 6, 8, 11, 13, 20])
def test_monotone_curve_gives_the_smallest_k_meeting_the_bound(smallest):
    curve = Curve(lambda k: 3.0 if k < smallest else 0.5, 1.0)
    assert _check_search_promises(curve, 20) == smallest
    first_met = next(k for k in coarse_ks(20) if k >= smallest)
    assert max(curve.calls) == first_met  # nothing beyond the first doubling K that met it


def test_known_drop_sequence_tries_the_documented_ks():
    drops = {0: 4.0, 1: 3.1, 2: 2.5, 3: 1.8, 4: 1.4, 5: 0.9, 6: 0.7, 7: 0.6, 8: 0.4, 9: 0.3, 10: 0.1}
    curve = Curve(drops.__getitem__, 1.0)
    assert _check_search_promises(curve, 10) == 5
    assert curve.calls == [0, 1, 2, 4, 8, 6, 5]


def test_non_monotone_curve_returns_a_verified_boundary_not_a_lucky_guess():
    # met at 2, missed at 3..5, met again from 6: the doubling meets at 2 first
    drops = {0: 2.0, 1: 1.5, 2: 0.8, 3: 1.6, 4: 1.7, 5: 1.2, 6: 0.4, 7: 0.9, 8: 0.3}
    assert _check_search_promises(Curve(drops.__getitem__, 1.0), 8) == 2
    # missed at 4 although 3 meets: bisection between 4 (miss) and 8 (met) finds 7, never claims 3
    drops = {0: 2.0, 1: 1.5, 2: 1.4, 3: 0.2, 4: 1.7, 5: 1.2, 6: 1.1, 7: 0.9, 8: 0.3}
    curve = Curve(drops.__getitem__, 1.0)
    assert _check_search_promises(curve, 8) == 7
    assert 3 not in curve.calls


def test_the_observed_curve_is_refused_when_only_a_near_float_model_meets_the_bound():
    """Issue 14's measured drops (6.39 / 1.15 / 6.47 / -0.02 at K = 0 / 16 / 80 / 85): only K = 85 meets
    0.5 points, at the size of the float model; refused unless large models are allowed."""
    known = {0: 6.39, 16: 1.15, 80: 6.47, 85: -0.02}

    def drops(k: int) -> float:
        return known.get(k, 6.0 if k < 80 else 3.0)

    def ratios(k: int) -> float:
        return 0.27 + 0.73 * k / 85  # the model grows towards the fp32 size as layers turn float

    refused = Curve(drops, 0.5, ratios)
    assert _check_search_promises(refused, 85) is None
    assert max(refused.calls) < 85  # stopped at the first K refused as too large
    allowed = Curve(drops, 0.5, ratios, allow_large=True)
    assert _check_search_promises(allowed, 85) == 85
    assert 84 in allowed.calls


@pytest.mark.parametrize("seed", range(40))
def test_noisy_non_monotone_curves_keep_every_promise(seed):
    rng = np.random.default_rng(seed)
    layers = int(rng.integers(1, 90))
    trend = rng.uniform(0.5, 8.0) * np.exp(-np.arange(layers + 1) / rng.uniform(2, 40))
    drops = trend + rng.normal(0, rng.uniform(0.05, 2.0), layers + 1)  # noise as large as the trend
    bound = float(rng.uniform(-0.5, 3.0))
    growth = rng.uniform(0.0, 0.02)
    curve = Curve(lambda k: drops[k], bound, lambda k: 0.27 + growth * k, allow_large=bool(seed % 2))
    _check_search_promises(curve, layers)


def test_search_reports_none_when_no_k_meets_the_bound():
    curve = Curve(lambda k: 2.0, 1.0)
    assert _check_search_promises(curve, 5) is None
    assert curve.calls == [0, 1, 2, 4, 5]


@pytest.mark.parametrize("value,expected", [("auto", "auto"), ("AUTO", "auto"), ("0", 0), ("7", 7), (3, 3)])
def test_parse_k(value, expected):
    assert parse_k(value) == expected


@pytest.mark.parametrize("value", ["-1", "some", "1.5", ""])
def test_parse_k_rejects_bad_values(value):
    with pytest.raises(ConfigError):
        parse_k(value)


def _masks(rng, images: int, wrong: int):
    truth = rng.integers(0, 3, (images, 8, 8)).astype(np.uint8)
    model = truth.copy()
    model[:wrong] = (model[:wrong] + 1) % 3  # the first `wrong` images entirely mislabelled
    return truth, model


def test_drop_noise_is_zero_for_a_perfect_copy_and_shrinks_with_more_images():
    rng = np.random.default_rng(0)
    truth, model = _masks(rng, 10, 2)
    assert drop_noise(truth, truth, truth, 3) == 0.0
    small = drop_noise(truth, truth, model, 3)
    # the same images four times over: a bootstrap spread ~ 1/sqrt(n) halves (statistics, not the code)
    big = drop_noise(np.tile(truth, (4, 1, 1)), np.tile(truth, (4, 1, 1)), np.tile(model, (4, 1, 1)), 3)
    assert small > 1.0 and 1.6 < small / big < 2.5
    assert drop_noise(truth[:1], truth[:1], model[:1], 3) is None


def test_stats_rmse_and_correlation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    s = ErrorStats()
    s.add(x, x)
    assert s.rmse == 0 and s.correlation == pytest.approx(1.0)
    s = ErrorStats()
    s.add(x[:500], x[:500] + 0.1)
    s.add(x[500:], x[500:] + 0.1)
    assert s.rmse == pytest.approx(0.1) and s.mean_error == pytest.approx(0.1)
    assert s.correlation == pytest.approx(1.0)
    s = ErrorStats()
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


class _FakeEvaluator(Curve):
    """What ``run_fallback`` needs of an Evaluator, over a synthetic curve (no model, no files)."""

    def __init__(self, drops, bound, ratios, layers: int, allow_large: bool = False) -> None:
        super().__init__(drops, bound, ratios, allow_large)
        self.layers = [f"layer{i}" for i in range(layers)]
        self.artifact, self.max_miou_drop, self.reference_miou = "int8", bound, 0.9
        self.fp32_bytes = 1000
        self.ctx = type("Ctx", (), {"reference": [0] * 12})()


def test_run_fallback_says_why_nothing_may_be_applied():
    from segedge.quant.fallback import run_fallback

    grows = lambda k: 0.27 + 0.05 * k  # noqa: E731  0.5 x fp32 from K = 5 on
    stopped = run_fallback(_FakeEvaluator(lambda k: 2.0, 1.0, grows, layers=20), "auto")
    assert stopped.failed and stopped.applied_k is None and stopped.model_path is None
    assert [t.k for t in stopped.tried] == [0, 1, 2, 4, 8]  # 8 is too large: nothing beyond it is tried
    assert "no K up to 8" in stopped.refused and "--allow-large-fallback" in stopped.refused
    large = run_fallback(_FakeEvaluator(lambda k: 2.0 if k < 8 else 0.5, 1.0, grows, layers=20), "auto")
    assert large.failed and "K=8 met it at 0.67x" in large.refused
    fixed = run_fallback(_FakeEvaluator(lambda k: 0.5, 1.0, grows, layers=20), 6)
    assert fixed.failed and fixed.applied_k is None and "K=6" in fixed.refused
    missed = run_fallback(_FakeEvaluator(lambda k: 2.0, 1.0, lambda k: 0.3, layers=3), "auto")
    assert missed.failed and [t.k for t in missed.tried] == [0, 1, 2, 3] and "no K met" in missed.refused
    assert missed.noise is None and not missed.bound_meaningful  # the fake trials carry no noise estimate
