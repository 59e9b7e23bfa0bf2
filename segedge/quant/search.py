"""The K search over a non-monotone objective: how many of the worst layers to leave in float.

Measured on real runs, the mIoU drop is *not* monotone in K (e.g. 6.39 /
1.15 / 6.47 / -0.02 points at K = 0 / 16 / 80 / 85): leaving one more layer
in float can make things worse, because the float layer feeds re-calibrated
int8 layers downstream. So the search promises only what it can check:

* every K it returns was measured and met the bound (and was not refused
  as too large);
* K - 1 was measured too and missed (K is a boundary, a *local* minimum:
  a smaller untried K may also meet the bound; every K tried is reported);
* the model size grows with K, so once a K is refused as too large no
  larger K is tried.

Order: K = 0, 1, 2, 4, ... up to the number of layers until one is
acceptable, then bisection between the last K that was not and the first
that was. ``evaluate`` is called at most once per K. No TensorFlow, no
model: the unit tests drive it with synthetic curves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from segedge.util.errors import ConfigError

AUTO = "auto"
LARGE_FRACTION = 0.5  # a fallback model at or above this fraction of the fp32 size is refused by default


@dataclass
class Trial:
    """One K: the int8 model with the K worst layers in float, scored on the reference set."""

    k: int
    miou: float
    drop: float          # points: 100 * (Keras mIoU - this mIoU)
    meets: bool          # drop <= the bound
    p50_ms: float | None = None
    bytes: int | None = None
    float_layers: list[str] = field(default_factory=list)   # denylisted and verified float in the model
    not_float: list[str] = field(default_factory=list)      # denylisted, but the quantizer kept them int8
    size_ratio: float | None = None   # bytes / the fp32 model's bytes
    too_large: bool = False           # size_ratio >= LARGE_FRACTION and large results are not allowed
    drop_noise: float | None = None   # bootstrap standard deviation of ``drop`` over the reference images
    sha256: str | None = None

    @property
    def acceptable(self) -> bool:
        return self.meets and not self.too_large


def coarse_ks(layers: int) -> list[int]:
    """0, 1, 2, 4, 8, ... and finally ``layers`` itself."""
    ks, k = [0], 1
    while k < layers:
        ks.append(k)
        k *= 2
    if layers > 0:
        ks.append(layers)
    return ks


def search_smallest_k(evaluate: Callable[[int], Trial], layers: int) -> tuple[int | None, list[Trial]]:
    """Doubling then bisection over K in 0..layers; returns (chosen K or None, trials in the order tried).

    Invariant of the bisection: ``below`` was tried and is not acceptable,
    ``above`` was tried and is; it ends when they are adjacent, so a chosen
    K > 0 always has K - 1 among the trials, not acceptable.
    """
    tried: dict[int, Trial] = {}
    below, above = -1, None
    for k in coarse_ks(layers):
        trial = tried[k] = evaluate(k)
        if trial.acceptable:
            above = k
            break
        if trial.too_large:
            break  # larger K only grows the model
        below = k
    if above is None:
        return None, list(tried.values())
    while above - below > 1:
        middle = (above + below) // 2
        trial = tried[middle] = evaluate(middle)
        if trial.acceptable:
            above = middle
        else:
            below = middle
    return above, list(tried.values())


def parse_k(value: str | int) -> str | int:
    """``auto`` or a non-negative integer (ConfigError otherwise)."""
    if isinstance(value, int) or str(value).strip().lstrip("-").isdigit():
        k = int(value)
        if k < 0:
            raise ConfigError(f"--int8-fallback must be auto or a count >= 0, got {k}")
        return k
    if str(value).strip().lower() == AUTO:
        return AUTO
    raise ConfigError(f"--int8-fallback must be auto or a count of layers, got {value!r}")


def check_bound(max_miou_drop: float) -> None:
    if not math.isfinite(max_miou_drop):
        raise ConfigError(f"--fallback-max-drop must be a finite number of mIoU points, got {max_miou_drop}")
