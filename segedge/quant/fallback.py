"""Selective float fallback: measure the int8 model with the K worst layers left in float, and pick K.

The K worst layers come from the per-layer report (ranked by RMSE / scale).
A builder (``requant_tflite.TFLiteBuilder`` or ``requant_onnx.OnnxBuilder``)
writes each K's model into a scratch folder; ``Evaluator`` scores it on the
bundle's reference set (``scoring``) and records its size against the fp32
model. ``search.search_smallest_k`` picks K in ``auto`` mode; a fixed K is
measured next to K = 0. Nothing here touches the bundle: ``apply`` does,
after the pick, and re-measures the model as written.

A K > 0 model at or above ``LARGE_FRACTION`` of the fp32 size is refused
unless ``allow_large``: it is no longer an int8 model in any useful sense
(observed: 85 float layers, 26.06 MB next to the 7.07 MB int8 model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from segedge.contract.manifest import verify_artifact_file
from segedge.contract.targets import Precision
from segedge.quant.context import ONNX_FP32, ONNX_INT8, TFLITE_FP32, TFLITE_INT8, QuantContext
from segedge.quant.layers import RANKING
from segedge.quant.report import QuantReport
from segedge.quant.scoring import drop_noise, keras_miou, score_model
from segedge.quant.search import AUTO, LARGE_FRACTION, Trial, check_bound, parse_k, search_smallest_k
from segedge.util import fileio
from segedge.util.errors import ConfigError

NOISE_Z = 1.96  # the bound is called meaningful when it exceeds the 95 % half-width of the drop's noise


class Builder(Protocol):
    suffix: str

    def build(self, names: list[str], path: Path) -> None: ...

    def float_check(self, path: Path, names: list[str]) -> list[str]: ...


@dataclass
class FallbackResult:
    """What the search measured for one int8 artifact, what it picked, and whether that may be applied."""

    artifact: str                  # the bundle artifact this result is for
    mode: str                      # "auto" or "fixed"
    max_miou_drop: float
    keras_miou: float
    tried: list[Trial]
    chosen_k: int | None           # a K that met the bound and is not refused (None: none)
    applied_k: int | None = None   # auto: chosen_k; fixed: the K asked for, met or not, unless refused
    float_layers: list[str] = field(default_factory=list)  # of the applied K, verified float in its model
    ranking: str = RANKING
    fp32_bytes: int = 0
    size_basis: str = ""           # which fp32 model the size ratio is against
    allow_large: bool = False
    reference_images: int = 0
    noise: float | None = None     # bootstrap std of the plain int8 drop (points)
    refused: str | None = None     # why nothing may be applied, when the search found nothing usable
    io_dtype: dict[str, str] = field(default_factory=dict)
    model_path: Path | None = field(default=None, repr=False)  # the applied K's model, in scratch
    replaced: bool = False
    verified: dict[str, Any] = field(default_factory=dict)  # the model as written, re-measured

    @property
    def met(self) -> bool:
        return self.chosen_k is not None

    @property
    def failed(self) -> bool:
        """Nothing may be applied: auto found no acceptable K, or the (fixed) K is refused as too large."""
        return self.refused is not None

    @property
    def model(self) -> bytes | None:
        return self.model_path.read_bytes() if self.model_path is not None else None

    @property
    def bound_meaningful(self) -> bool:
        return self.noise is not None and math.isfinite(self.noise) and self.max_miou_drop > NOISE_Z * self.noise

    def trial(self, k: int) -> Trial:
        return next(t for t in self.tried if t.k == k)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "model_path"}
        data["tried"] = [asdict(t) for t in sorted(self.tried, key=lambda t: t.k)]
        data.update(met=self.met, failed=self.failed, bound_meaningful=self.bound_meaningful)
        return data


@dataclass
class Evaluator:
    """Builds, checks and scores the model with the first K of ``layers`` in float (one call per K)."""

    ctx: QuantContext
    builder: Builder
    layers: list[str]
    artifact: str
    max_miou_drop: float
    fp32_bytes: int
    allow_large: bool
    scratch: Path
    baseline: Path | None = None   # K = 0: the bundle's own int8 file, measured as it is (None: re-quantize)
    reference_miou: float = 0.0
    metadata: dict[str, Any] | None = None  # the bundle artifact's embedded document, read once

    def __post_init__(self) -> None:
        from segedge.contract import metadata
        self.reference_miou = keras_miou(self.ctx)
        self.metadata = metadata.read_artifact(self.ctx.artifact_path(self.artifact))

    def path(self, k: int) -> Path:
        return self.scratch / f"fallback_{self.artifact}_k{k}{self.builder.suffix}"

    def __call__(self, k: int) -> Trial:
        names = list(self.layers[:k])
        path = self.path(k)
        if k == 0 and self.baseline is not None:
            path.write_bytes(self.baseline.read_bytes())
        else:
            self.builder.build(names, path)
            embed_bundle_metadata(path, self.metadata)
        floats = self.builder.float_check(path, names)
        score = score_model(path, self.ctx)
        drop = 100.0 * (self.reference_miou - score.miou)
        size = path.stat().st_size
        ratio = size / self.fp32_bytes if self.fp32_bytes else None
        reference = self.ctx.reference
        noise = drop_noise(reference.truth, reference.keras, score.masks, self.ctx.manifest.num_classes)
        return Trial(k, score.miou, drop, drop <= self.max_miou_drop + 1e-9, score.p50_ms, size, floats,
                     [n for n in names if n not in floats], ratio,
                     too_large=bool(k > 0 and ratio is not None and ratio >= LARGE_FRACTION and not self.allow_large),
                     drop_noise=noise, sha256=fileio.sha256_file(path))


def _refusal(result: FallbackResult) -> str | None:
    """Why the result must not be applied (None: it may)."""
    if result.applied_k is not None:
        applied = result.trial(result.applied_k)
        if applied.too_large:
            return (f"K={applied.k} gives a model {applied.size_ratio:.2f}x the fp32 size (>= {LARGE_FRACTION:g}x); "
                    "pass --allow-large-fallback to accept it")
        return None
    large = [t for t in result.tried if t.meets and t.too_large]
    if large:
        return (f"no K met --fallback-max-drop {result.max_miou_drop:g} within {LARGE_FRACTION:g}x the fp32 size "
                f"(K={large[0].k} met it at {large[0].size_ratio:.2f}x); pass --allow-large-fallback to accept that")
    last = max(result.tried, key=lambda t: t.k)
    if last.too_large:  # the search stopped there: larger K only grow the model
        return (f"no K up to {last.k} met --fallback-max-drop {result.max_miou_drop:g}, and K={last.k} is already "
                f"{last.size_ratio:.2f}x the fp32 size (--allow-large-fallback tries larger K)")
    return f"no K met --fallback-max-drop {result.max_miou_drop:g} (every K tried is in the table)"


def run_fallback(evaluate: Evaluator, k: str | int, ranking: str = RANKING) -> FallbackResult:
    """Search (``auto``) or measure a fixed K (next to K = 0) over ``evaluate.layers``; nothing is applied."""
    check_bound(evaluate.max_miou_drop)
    k = parse_k(k)
    layers = len(evaluate.layers)
    if isinstance(k, int) and k > layers:
        raise ConfigError(f"--int8-fallback {k}: the {evaluate.artifact} model has only {layers} quantized layers")
    if k == AUTO:
        chosen, tried = search_smallest_k(evaluate, layers)
        applied, mode = chosen, AUTO
    else:
        tried = [evaluate(count) for count in sorted({0, int(k)})]
        fixed = next(t for t in tried if t.k == k)
        chosen, applied, mode = (int(k) if fixed.acceptable else None), int(k), "fixed"
    result = FallbackResult(
        artifact=evaluate.artifact, mode=mode, max_miou_drop=evaluate.max_miou_drop,
        keras_miou=evaluate.reference_miou, tried=tried, chosen_k=chosen, applied_k=applied, ranking=ranking,
        fp32_bytes=evaluate.fp32_bytes, allow_large=evaluate.allow_large,
        reference_images=len(evaluate.ctx.reference), noise=next(t for t in tried if t.k == 0).drop_noise)
    result.refused = _refusal(result)
    if result.refused is not None:
        result.applied_k = None
    elif result.applied_k is not None:
        result.model_path = evaluate.path(result.applied_k)
        result.float_layers = list(result.trial(result.applied_k).float_layers)
        from segedge.export.verify import read_io

        tensor_in, tensor_out = read_io(result.model_path)
        result.io_dtype = {"input": tensor_in.dtype, "output": tensor_out.dtype}
    return result


def embed_bundle_metadata(path: Path, document: dict[str, Any] | None) -> None:
    """Give a candidate the metadata of the artifact it would replace, before it is measured and hashed.

    The sha256 the search records is then the file that gets written, and predict and bench find the same
    labels and pixel-input contract in it as in the model it replaces.
    """
    from segedge.contract import metadata
    if document is not None:
        runtime = "onnx" if path.suffix == ".onnx" else "tflite"
        path.write_bytes(metadata.embed(path.read_bytes(), runtime, document))


def _baseline(ctx: QuantContext, artifact: str) -> Path | None:
    """K = 0 is the bundle's own model unless that is an earlier fallback (then plain int8 is rebuilt).

    Its bytes must be those the manifest records (ModelError otherwise): K = 0 stands for the file on disk.
    """
    info = ctx.manifest.artifacts[artifact]
    if info.precision == Precision.mixed.value:
        return None
    verify_artifact_file(ctx.artifact_path(artifact), info)
    return ctx.artifact_path(artifact)


def tflite_fallback(ctx: QuantContext, report: QuantReport, debugger: Any, scratch: Path, k: str | int,
                    max_miou_drop: float, allow_large: bool = False) -> FallbackResult:
    """TFLite int8: the debugger's calibrated model re-quantized with the K worst layers denylisted."""
    from segedge.quant.requant_tflite import TFLiteBuilder

    if TFLITE_FP32 in ctx.manifest.artifacts:
        fp32_bytes, basis = ctx.manifest.artifacts[TFLITE_FP32].bytes, f"{TFLITE_FP32} artifact"
    else:  # the calibrated model is the float model plus per-tensor statistics: about the fp32 size
        fp32_bytes, basis = len(debugger.calibrated_model), "calibrated float model (no fp32 artifact)"
    evaluate = Evaluator(ctx, TFLiteBuilder(debugger, ctx.int8_io), report.worst(len(report.tflite)), TFLITE_INT8,
                         max_miou_drop, fp32_bytes, allow_large, scratch, _baseline(ctx, TFLITE_INT8))
    result = run_fallback(evaluate, k, report.ranking)
    result.size_basis = basis
    return result


def onnx_builder(ctx: QuantContext, scratch: Path):
    """Re-quantizes the bundle's fp32 ONNX with the calibration ids, method and reduce_range export used."""
    from segedge.export.options import CalibMethod
    from segedge.quant.requant_onnx import OnnxBuilder

    details = ctx.manifest.artifacts[ONNX_INT8].details
    return OnnxBuilder(
        fp32_path=ctx.artifact_path(ONNX_FP32), work=scratch / "onnx_requantize", calibration=ctx.calibration,
        method=CalibMethod(details.get("calibration_method", CalibMethod.minmax.value)),
        reduce_range=bool(details.get("reduce_range", True)), cache=scratch / "onnx_calibration_cache.json")


def onnx_fallback(ctx: QuantContext, report: QuantReport, scratch: Path, k: str | int,
                  max_miou_drop: float, allow_large: bool = False) -> FallbackResult:
    """ONNX int8: the bundle's fp32 ONNX re-quantized with the K worst nodes in ``nodes_to_exclude``."""

    from segedge.quant.requant_onnx import onnx_fallback_nodes

    if report.onnx is None or ONNX_INT8 not in ctx.manifest.artifacts or ONNX_FP32 not in ctx.manifest.artifacts:
        raise ConfigError(f"{ctx.bundle}: the ONNX float fallback needs the onnx and onnx-int8 artifacts")
    evaluate = Evaluator(ctx, onnx_builder(ctx, scratch), onnx_fallback_nodes(report.onnx), ONNX_INT8, max_miou_drop,
                         ctx.manifest.artifacts[ONNX_FP32].bytes, allow_large, scratch, _baseline(ctx, ONNX_INT8))
    result = run_fallback(evaluate, k, report.ranking)
    result.size_basis = f"{ONNX_FP32} artifact"
    return result


def fallback_layers(result: FallbackResult, k: int) -> Sequence[str]:
    """Every layer asked to stay float at ``k`` (those that did, then those the quantizer kept int8)."""
    trial = result.trial(k)
    return [*trial.float_layers, *trial.not_float]
