"""Bench maths on known samples: percentiles, summaries, option parsing, the gate, gallery picks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segedge.bench.gallery import choose_images, outline
from segedge.bench.gate import GateBounds, evaluate_gate, parse_min_agreement
from segedge.bench.run import parse_threads
from segedge.bench.stats import mean, percentile, std, summarize_ns
from segedge.util.errors import ConfigError


@pytest.mark.parametrize(("p", "expected"), [(0, 1.0), (25, 1.75), (50, 2.5), (90, 3.7), (99, 3.97), (100, 4.0)])
def test_percentile_interpolates_linearly_between_ranks(p, expected):
    # rank = (n - 1) * p / 100 over sorted [1, 2, 3, 4]; p90 -> rank 2.7 -> 3 + 0.7 * (4 - 3)
    assert percentile([4, 1, 3, 2], p) == pytest.approx(expected)


def test_percentile_matches_numpy_default_method():
    samples = np.random.default_rng(3).gamma(2.0, 5.0, size=101).tolist()
    for p in (1, 10, 33.3, 50, 90, 99, 99.9):
        assert percentile(samples, p) == pytest.approx(float(np.percentile(samples, p)))


def test_percentile_edge_cases():
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


def test_summary_in_milliseconds_with_population_std():
    summary = summarize_ns([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    assert summary["mean_ms"] == pytest.approx(2.5)
    assert summary["p50_ms"] == pytest.approx(2.5)
    assert summary["p90_ms"] == pytest.approx(3.7)
    assert summary["min_ms"] == 1.0 and summary["max_ms"] == 4.0 and summary["runs"] == 4
    assert summary["std_ms"] == pytest.approx(math.sqrt(1.25))  # ddof=0, as numpy
    assert std([1.0, 2.0, 3.0, 4.0]) == pytest.approx(float(np.std([1, 2, 3, 4])))
    assert mean([]) != mean([])  # NaN


def test_parse_threads_dedupes_and_rejects_nonsense():
    assert parse_threads("1,2,2,4") == [1, 2, 4]
    for bad in ("0", "1,x", ",", "-1"):
        with pytest.raises(ConfigError):
            parse_threads(bad)


def test_min_agreement_default_and_per_format():
    default, per_format = parse_min_agreement(["0.99", "int8=0.97"], {"fp32", "int8"})
    assert default == 0.99 and per_format == {"int8": 0.97}
    assert parse_min_agreement([], {"fp32"}) == (0.98, {})
    for bad in (["98"], ["int8=abc"], ["nope=0.9"]):
        with pytest.raises(ConfigError):
            parse_min_agreement(bad, {"fp32", "int8"})


def _acc(agreement: float, miou: float, keras_miou: float = 0.5) -> dict:
    return {"agreement": agreement, "miou_reference": miou, "keras_miou_reference": keras_miou,
            "miou_delta_pts": 100 * (miou - keras_miou)}


def test_gate_names_artifact_value_and_bound():
    bounds = GateBounds(max_miou_drop=1.0, min_agreement=0.98, min_agreement_for={"int8": 0.95})
    accuracy = {"fp32": _acc(1.0, 0.5), "int8": _acc(0.96, 0.495), "fp16": _acc(0.97, 0.48), "onnx": None}
    failures = evaluate_gate(["fp32", "int8", "fp16", "onnx", "dynamic"], accuracy,
                             {"dynamic": "not a valid TFLite model"}, bounds)
    assert len(failures) == 3  # fp32 passes; int8 passes its own 0.95 bound and a 0.5-point drop
    fp16, onnx, dynamic = failures
    assert fp16.startswith("fp16:") and "97.00 %" in fp16 and "98.00 %" in fp16 and "2.00 points" in fp16
    assert onnx.startswith("onnx:") and dynamic.startswith("dynamic:") and "not a valid" in dynamic


def test_gallery_picks_worst_then_median():
    per_image = [0.9, 0.5, 0.99, 0.7, 0.95, 0.8]
    chosen = choose_images(per_image, 3)
    assert chosen[0] == (1, "worst") and chosen[1] == (3, "worst")
    assert chosen[2][1] == "median" and chosen[2][0] in (0, 5)
    assert len(choose_images(per_image, 10)) == len(per_image)
    assert choose_images(per_image, 0) == []


def test_outline_draws_only_the_border_of_disagreement():
    rgb = np.zeros((5, 5, 3), dtype=np.uint8)
    differs = np.zeros((5, 5), dtype=bool)
    differs[1:4, 1:4] = True
    drawn = outline(rgb, differs)
    border = (drawn != 0).any(-1)
    expected = differs.copy()
    expected[2, 2] = False  # the centre of a 3x3 region is interior
    assert (border == expected).all()
    assert (drawn[1, 1] == 255).all()  # white on a dark class colour
