"""The frontier and the budget pick on hand-made points (no models, no timing)."""

from __future__ import annotations

import math

import pytest

from segedge.bench.frontier import Point, dominates, fastest, frontier, pick_under_budget


def keys(points):
    return [p.key for p in points]


def test_dominated_points_leave_the_frontier_fastest_first():
    points = [Point("big", 10.0, 0.80), Point("small", 2.0, 0.60), Point("mid", 5.0, 0.70),
              Point("slow-and-worse", 12.0, 0.75), Point("mid-but-worse", 6.0, 0.65)]
    assert keys(frontier(points)) == ["small", "mid", "big"]


def test_equal_latency_or_equal_miou_is_beaten_by_the_strictly_better_one():
    # same mIoU, slower: beaten; same latency, less accurate: beaten
    points = [Point("a", 3.0, 0.70), Point("a-slower", 4.0, 0.70), Point("a-worse", 3.0, 0.60)]
    assert keys(frontier(points)) == ["a"]
    assert dominates(points[0], points[1]) and dominates(points[0], points[2])
    assert not dominates(points[1], points[0])


def test_identical_points_both_stay_and_keep_their_order():
    points = [Point("x", 3.0, 0.7), Point("y", 3.0, 0.7), Point("z", 1.0, 0.5)]
    assert keys(frontier(points)) == ["z", "x", "y"]
    assert not dominates(points[0], points[1]) and not dominates(points[1], points[0])


def test_order_of_the_input_does_not_change_the_frontier():
    points = [Point(str(i), lat, miou) for i, (lat, miou) in
              enumerate([(1, 0.1), (2, 0.3), (3, 0.2), (4, 0.5), (5, 0.5), (6, 0.9)])]
    assert set(keys(frontier(points))) == set(keys(frontier(list(reversed(points))))) == {"0", "1", "3", "5"}


def test_empty_and_unusable_points():
    assert frontier([]) == [] and fastest([]) is None and pick_under_budget([], 10.0) is None
    broken = [Point("error", None, 0.9), Point("no-truth", 1.0, None), Point("nan", math.nan, 0.5)]
    assert frontier(broken) == [] and pick_under_budget(broken, 100.0) is None and fastest(broken) is None
    # an unusable point never dominates a usable one
    assert keys(frontier([*broken, Point("ok", 50.0, 0.1)])) == ["ok"]


def test_budget_picks_the_most_accurate_under_it():
    points = [Point("big", 10.0, 0.80), Point("small", 2.0, 0.60), Point("mid", 5.0, 0.70)]
    assert pick_under_budget(points, 6.0).key == "mid"
    assert pick_under_budget(points, 10.0).key == "big"  # the bound is inclusive
    assert pick_under_budget(points, 100.0).key == "big"
    assert pick_under_budget(points, 2.0).key == "small"


def test_budget_ties_go_to_the_faster_then_the_first():
    points = [Point("slow", 4.0, 0.7), Point("fast", 3.0, 0.7), Point("fast-too", 3.0, 0.7)]
    assert pick_under_budget(points, 5.0).key == "fast"


def test_budget_with_nothing_under_it_picks_none_and_fastest_names_the_quickest():
    points = [Point("big", 10.0, 0.80), Point("small", 2.0, 0.60)]
    assert pick_under_budget(points, 1.5) is None
    assert fastest(points).key == "small"


def test_the_pick_is_always_on_the_frontier():
    points = [Point(str(i), float(lat), miou) for i, (lat, miou) in
              enumerate([(1, 0.2), (2, 0.1), (3, 0.5), (4, 0.4), (7, 0.6), (8, 0.6)])]
    on = set(keys(frontier(points)))
    for budget in (1, 2, 3, 4, 5, 7, 8, 100):
        assert pick_under_budget(points, budget).key in on


@pytest.mark.parametrize("budget", [0, -1.0, "5"])
def test_a_budget_must_be_a_positive_number(budget):
    with pytest.raises(ValueError):
        pick_under_budget([Point("a", 1.0, 0.5)], budget)
