"""Choices an export is made with; str Enums so CLI values, manifest values and code agree."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from segedge.util.errors import ConfigError


class IntIO(str, Enum):
    """Input/output type of the full-integer TFLite model (its internals are int8 either way)."""

    uint8 = "uint8"  # a camera frame goes in without float maths
    int8 = "int8"


class CalibMethod(str, Enum):
    """onnxruntime static-quantization calibration (TFLite always uses min/max)."""

    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


@dataclass(frozen=True)
class ExportOptions:
    calib: int = 200
    eval_count: int = 100
    int8_io: IntIO = IntIO.uint8
    calib_method: CalibMethod = CalibMethod.minmax

    @classmethod
    def build(cls, calib: int, eval_count: int, int8_io: str, calib_method: str) -> ExportOptions:
        """Validate user values (ConfigError, never an assert)."""
        if calib < 1:
            raise ConfigError(f"--calib-images must be at least 1, got {calib}")
        if eval_count < 1:
            raise ConfigError(f"--eval-images must be at least 1, got {eval_count}")
        try:
            io = IntIO(int8_io)
        except ValueError:
            raise ConfigError(f"--int8-io must be uint8 or int8, got {int8_io!r}") from None
        try:
            method = CalibMethod(calib_method)
        except ValueError:
            raise ConfigError(
                f"--calib-method must be one of {', '.join(m.value for m in CalibMethod)}, got {calib_method!r}"
            ) from None
        return cls(calib, eval_count, io, method)
