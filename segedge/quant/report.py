"""Per-layer int8 quantization error: which layers does int8 hurt?

Builds the TFLite table (``tflite_layers``) and, when the bundle has both
ONNX models, the ONNX table (``onnx_layers``) into one ``QuantReport``;
``report_files`` writes it. Rows are sorted worst first by RMSE / scale.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segedge.quant.context import ONNX_FP32, ONNX_INT8, TFLITE_INT8, QuantContext
from segedge.quant.layers import RANKING, LayerError
from segedge.quant.tflite_layers import TFLiteDebug, debug_tflite_context
from segedge.util.errors import ConfigError, ModelError

SCHEMA_VERSION = 1
REPORT_JSON = "quant_report.json"


@dataclass
class QuantReport:
    """The per-layer table(s); rows sorted worst first by ``ranking``."""

    tflite: list[LayerError]
    onnx: list[LayerError] | None
    samples: dict[str, Any]
    bundle: str
    ranking: str = RANKING
    notes: list[str] = field(default_factory=list)
    created: str = ""
    schema_version: int = SCHEMA_VERSION

    def worst(self, count: int) -> list[str]:
        """Names of the ``count`` worst TFLite layers (the fallback order)."""
        return [row.name for row in self.tflite[:count]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "created": self.created,
            "bundle": self.bundle,
            "ranking": self.ranking,
            "samples": self.samples,
            "notes": list(self.notes),
            "tflite": {"artifact": TFLITE_INT8, "layers": [asdict(r) for r in self.tflite]},
            "onnx": None if self.onnx is None else {"artifact": ONNX_INT8, "layers": [asdict(r) for r in self.onnx]},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantReport:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ModelError(f"{REPORT_JSON}: unknown schema_version {data.get('schema_version')!r}")
        onnx = data.get("onnx")
        return cls(tflite=[LayerError(**r) for r in data["tflite"]["layers"]],
                   onnx=None if onnx is None else [LayerError(**r) for r in onnx["layers"]],
                   samples=data.get("samples", {}), bundle=data.get("bundle", ""),
                   ranking=data.get("ranking", RANKING), notes=list(data.get("notes", [])),
                   created=data.get("created", ""))


def check_samples(samples: int) -> None:
    if samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {samples}")


def build_report(ctx: QuantContext, scratch: Path, samples: int, onnx: bool = True) -> tuple[QuantReport, TFLiteDebug]:
    """The TFLite table (and the ONNX one when the bundle has both ONNX models and ``onnx``)."""
    check_samples(samples)
    if TFLITE_INT8 not in ctx.manifest.artifacts:
        raise ModelError(f"{ctx.bundle}: has no int8 TFLite artifact; export with --format int8")
    debug, ids = debug_tflite_context(ctx, scratch, samples)
    notes: list[str] = []
    onnx_rows = None
    if onnx:
        if ONNX_INT8 in ctx.manifest.artifacts and ONNX_FP32 in ctx.manifest.artifacts:
            from segedge.quant.onnx_layers import onnx_layer_rows

            _, batches = ctx.debug_batches(samples)
            onnx_rows = onnx_layer_rows(ctx.artifact_path(ONNX_FP32), ctx.artifact_path(ONNX_INT8), batches, scratch)
        else:
            notes.append("ONNX table skipped: the bundle needs both the onnx and onnx-int8 artifacts")
    report = QuantReport(
        tflite=debug.rows, onnx=onnx_rows, bundle=str(ctx.bundle), notes=notes,
        samples={"count": len(ids), "reference": sum(i.startswith("reference:") for i in ids),
                 "calibration": sum(i.startswith("calibration:") for i in ids), "ids": ids},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return report, debug
