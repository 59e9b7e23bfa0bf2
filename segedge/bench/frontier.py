"""The accuracy-vs-latency frontier, and the pick under a latency budget: pure functions on points.

A deployer's question is "which model gives the best masks at the frame rate I
need, on this board". Across bundles of several sizes, only the artifacts no
other beats on both latency and mIoU are worth considering (the frontier); a
budget in ms then picks one of them. No I/O, no numpy: the multi-bundle bench
and ``benchmarks/bench_frontier.py`` feed it rows, tests feed it hand-made points.

Rules, chosen so the answer is the same whatever order the rows come in:
- a point with no latency or no mIoU (a failed row, no ground truth) is on no
  frontier and never picked;
- ``b`` dominates ``a`` when it is at least as fast and at least as accurate and
  strictly better on one of the two; two identical points both stay (neither
  beats the other), and so the frontier may hold ties;
- the budget pick is the most accurate point with latency <= budget; equal
  mIoU goes to the faster, then to the first given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Point:
    """One (artifact, threads) measurement: ``key`` names it, ``latency_ms`` is its p50, ``miou`` a fraction."""

    key: str
    latency_ms: float | None
    miou: float | None
    threads: int = 1
    info: Any = None  # the caller's row, carried along (compared by key, never by value)

    @property
    def usable(self) -> bool:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (self.latency_ms, self.miou))


def dominates(b: Point, a: Point) -> bool:
    """``b`` is at least as fast and as accurate as ``a`` and strictly better on one."""
    if not (a.usable and b.usable):
        return False
    no_worse = b.latency_ms <= a.latency_ms and b.miou >= a.miou
    return no_worse and (b.latency_ms < a.latency_ms or b.miou > a.miou)


def frontier(points: Iterable[Point]) -> list[Point]:
    """The usable points no other usable point dominates, fastest first (ties: more accurate, then input order)."""
    usable = [p for p in points if p.usable]
    kept = [p for p in usable if not any(dominates(q, p) for q in usable if q is not p)]
    order = {id(p): i for i, p in enumerate(usable)}
    return sorted(kept, key=lambda p: (p.latency_ms, -p.miou, order[id(p)]))


def pick_under_budget(points: Sequence[Point], budget_ms: float) -> Point | None:
    """The most accurate usable point whose latency is <= ``budget_ms``; None when none is.

    The pick is always on the frontier: a point that beats it on both would be under the budget too.
    """
    if not (isinstance(budget_ms, (int, float)) and budget_ms > 0):
        raise ValueError(f"the budget must be a positive number of ms, got {budget_ms!r}")
    under = [(i, p) for i, p in enumerate(points) if p.usable and p.latency_ms <= budget_ms]
    if not under:
        return None
    return min(under, key=lambda item: (-item[1].miou, item[1].latency_ms, item[0]))[1]


def fastest(points: Iterable[Point]) -> Point | None:
    """The usable point with the lowest latency (for the 'nothing fits the budget' line)."""
    usable = [p for p in points if p.usable]
    return min(usable, key=lambda p: p.latency_ms) if usable else None
