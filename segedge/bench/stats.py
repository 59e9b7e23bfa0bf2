"""Latency statistics written out by hand, so the maths is ours to test.

``percentile`` is linear interpolation between closest ranks (numpy's default
method, Hyndman & Fan type 7): the p-th percentile of sorted samples x[0..n-1]
sits at rank h = (n - 1) * p / 100 and is x[floor(h)] + (h - floor(h)) *
(x[floor(h) + 1] - x[floor(h)]). numpy is used for storage only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NS_PER_MS = 1_000_000


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by linear interpolation; NaN for no samples."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    ordered = sorted(float(v) for v in samples)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def mean(samples: Sequence[float]) -> float:
    return math.fsum(samples) / len(samples) if samples else math.nan


def std(samples: Sequence[float]) -> float:
    """Population standard deviation (numpy's default, ddof=0)."""
    if not samples:
        return math.nan
    centre = mean(samples)
    return math.sqrt(math.fsum((v - centre) ** 2 for v in samples) / len(samples))


def summarize_ns(samples_ns: Sequence[int]) -> dict[str, float]:
    """Per-run nanoseconds -> mean/p50/p90/p99/min/max/std in milliseconds."""
    ms = [v / NS_PER_MS for v in samples_ns]
    return {
        "mean_ms": mean(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "min_ms": min(ms) if ms else math.nan,
        "max_ms": max(ms) if ms else math.nan,
        "std_ms": std(ms),
        "runs": len(ms),
    }
