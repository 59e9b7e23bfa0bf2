"""One quantized layer's int8 error, and the running sums it is computed from (numpy only).

Shared by the TFLite and the ONNX per-layer tables so both rank layers the
same way: RMSE divided by the quantization step (the TFLite debugging
guide's "suspect" measure; uniform rounding alone gives about 0.29).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RANKING = "rmse_over_scale"


@dataclass
class LayerError:
    """One quantized activation and the error int8 adds to it."""

    name: str                 # TFLite: op output tensor name (what denylisted_nodes takes); ONNX: tensor name
    op: str                   # op type producing it
    rmse: float
    scale: float | None
    rmse_over_scale: float | None
    correlation: float | None  # Pearson, float vs dequantized, pooled over the debug images
    mean_error: float | None = None
    max_abs_error: float | None = None
    num_elements: int = 0
    zero_point: int | None = None
    node: str | None = None   # ONNX: the node producing the tensor (what nodes_to_exclude takes)
    float_rmse: float | None = None  # ONNX: RMSE against the fp32 model's activation (accumulated)


def _sort_key(row: LayerError) -> tuple[float, float]:
    ratio = row.rmse_over_scale if row.rmse_over_scale is not None and math.isfinite(row.rmse_over_scale) else -1.0
    return (-ratio, -row.rmse)


def sort_rows(rows: list[LayerError]) -> list[LayerError]:
    """Worst first: RMSE / scale (the TFLite guide's measure), ties by RMSE."""
    return sorted(rows, key=_sort_key)


def ratio(rmse: float, scale: float | None) -> float | None:
    """RMSE in quantization steps; None when the tensor has no (or a zero) scale."""
    return rmse / scale if scale else None


class ErrorStats:
    """Running sums for RMSE, mean error, max |error| and pooled Pearson correlation.

    Sums rather than stored tensors: a report pools every activation of every
    debug image, which would not fit in memory for a real model.
    """

    def __init__(self) -> None:
        self.n = 0
        self.sum_d = self.sum_d2 = self.max_abs = 0.0
        self.sx = self.sy = self.sxx = self.syy = self.sxy = 0.0

    def add(self, reference: np.ndarray, value: np.ndarray) -> None:
        x = np.asarray(reference, np.float64).ravel()
        y = np.asarray(value, np.float64).ravel()
        d = y - x
        self.n += x.size
        self.sum_d += float(d.sum())
        self.sum_d2 += float((d * d).sum())
        self.max_abs = max(self.max_abs, float(np.abs(d).max()) if d.size else 0.0)
        self.sx += float(x.sum())
        self.sy += float(y.sum())
        self.sxx += float((x * x).sum())
        self.syy += float((y * y).sum())
        self.sxy += float((x * y).sum())

    @property
    def rmse(self) -> float:
        return math.sqrt(self.sum_d2 / self.n) if self.n else 0.0

    @property
    def mean_error(self) -> float:
        return self.sum_d / self.n if self.n else 0.0

    @property
    def correlation(self) -> float | None:
        if not self.n:
            return None
        cov = self.sxy / self.n - (self.sx / self.n) * (self.sy / self.n)
        vx = self.sxx / self.n - (self.sx / self.n) ** 2
        vy = self.syy / self.n - (self.sy / self.n) ** 2
        if vx <= 1e-20 or vy <= 1e-20:
            return 1.0 if self.sum_d2 <= 1e-20 else None  # a constant tensor: defined only when exact
        return float(max(-1.0, min(1.0, cov / math.sqrt(vx * vy))))
