"""Selective float fallback: leave the K worst int8 layers in float.

The K worst layers come from the per-layer report (``quant_debug``, ranked by
RMSE / scale). The QuantizationDebugger's calibrated model (calibrated once,
on the bundle's own calibration ids) is re-quantized with those layers'
output tensors in ``denylisted_nodes``. The re-quantization is the very call
``TFLiteConverter`` makes for int8 (``mlir_quantize(calibrated,
input_data_type=..., output_data_type=...)``), so the model keeps the
bundle's uint8 (or int8) input/output; the debugger's own
``get_nondebug_quantized_model`` would give float (or int8) io, so it is only
the fallback route when that internal call is unavailable, and the io dtype
actually written is read back from the model and recorded in the manifest.
Float layers mean the model is no longer TFLITE_BUILTINS_INT8-only: it mixes
int8 builtins with float builtins and QUANTIZE/DEQUANTIZE at the borders.

ONNX int8 (when the report has the ONNX table): the K worst activations'
producer nodes go to ``quantize_static(nodes_to_exclude=...)`` on the
bundle's fp32 ONNX model, calibrated once on the same images (a calibration
cache) and re-quantized per K. A node counts as float when onnxruntime
cannot fuse it into an integer kernel: its weights are float initializers,
or some input does not come from a DequantizeLinear, or some output does
not go only to QuantizeLinear; an excluded node that still sits between
DQ and Q is reported as not float.

Scoring needs no TensorFlow: each candidate runs through
``segedge.edge.runtime.open_backend`` on the bundle's ``reference.npz``;
mIoU is ``segedge.metrics.mean_iou`` against the ground truth, compared with
the Keras model's mIoU on the same images (``reference.npz``'s ``keras``).

``auto`` search (assumes the drop shrinks, loosely, as K grows): try
K = 0, 1, 2, 4, 8, ... (capped at the number of quantized layers) until one
meets the bound, then bisect between the last K that missed and the first
that met it. Under monotonicity that is the smallest K; every K tried is
reported with its mIoU, drop and latency.
"""

from __future__ import annotations

import importlib
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segedge import fileio, metadata
from segedge.edge.runtime import open_backend
from segedge.errors import ConfigError, ParityError
from segedge.manifest import MANIFEST_NAME
from segedge.metrics import confusion_matrix, mean_iou
from segedge.quant.report import (
    ONNX_FP32,
    ONNX_INT8,
    TFLITE_INT8,
    QuantContext,
    QuantReport,
    build_report,
    load_context,
    write_report,
)

AUTO = "auto"
LATENCY_REPEATS = 5
REQUANTIZER = ("QuantizationDebugger calibrated model -> mlir_quantize(denylisted_nodes) "
               "(float fallback of the worst layers)")
ONNX_REQUANTIZER = ("onnxruntime.quantization.quantize_static (QDQ, nodes_to_exclude: float fallback of the "
                    "worst layers) after quant_pre_process")


@dataclass
class Trial:
    """One K: the int8 model with the K worst layers in float, scored on the reference set."""

    k: int
    miou: float
    drop: float          # points: 100 * (Keras mIoU - this mIoU)
    meets: bool
    p50_ms: float | None = None
    bytes: int | None = None
    float_layers: list[str] = field(default_factory=list)   # denylisted and verified float in the model
    not_float: list[str] = field(default_factory=list)      # denylisted, but the quantizer kept them int8


@dataclass
class FallbackResult:
    mode: str                      # "auto" or "fixed"
    max_miou_drop: float
    keras_miou: float
    tried: list[Trial]
    chosen_k: int | None           # the K that met the bound (None: none did)
    float_layers: list[str]        # of the applied K, verified float in the written model
    ranking: str = "rmse_over_scale"
    applied_k: int | None = None   # auto: chosen_k; fixed: the K asked for, met or not
    model: bytes | None = field(default=None, repr=False)  # the chosen model's bytes
    io_dtype: dict[str, str] = field(default_factory=dict)
    replaced: bool = False
    artifact: str = TFLITE_INT8    # the bundle artifact this result is for

    @property
    def met(self) -> bool:
        return self.chosen_k is not None

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "model"}
        data["tried"] = [asdict(t) for t in sorted(self.tried, key=lambda t: t.k)]
        return data


# --------------------------------------------------------------------------- search (no TF)


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
    """Doubling then bisection; ``evaluate`` is called at most once per K. Returns (chosen K, trials)."""
    tried: dict[int, Trial] = {}

    def trial(k: int) -> Trial:
        if k not in tried:
            tried[k] = evaluate(k)
        return tried[k]

    missed, met = -1, None
    for k in coarse_ks(layers):
        if trial(k).meets:
            met = k
            break
        missed = k
    if met is None:
        return None, list(tried.values())
    while met - missed > 1:
        middle = (met + missed) // 2
        if trial(middle).meets:
            met = middle
        else:
            missed = middle
    return met, list(tried.values())


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
        raise ConfigError(f"--max-miou-drop must be a finite number of mIoU points, got {max_miou_drop}")


# --------------------------------------------------------------------------- scoring (no TF)


def keras_miou(ctx: QuantContext) -> float:
    num_classes = ctx.manifest.num_classes
    return mean_iou(confusion_matrix(ctx.reference.truth, ctx.reference.keras, num_classes))


def score_model(path: Path, ctx: QuantContext, repeats: int = LATENCY_REPEATS) -> tuple[float, float]:
    """(mIoU on the reference set, p50 ms of ``repeats`` single-image invokes) through the edge runtime."""
    backend = open_backend(path, spec=ctx.manifest.preprocess)  # trial files carry no metadata
    try:
        inputs = ctx.reference.inputs  # uint8 pixels, prepared by the backend as on the device (issue 16)
        masks = [backend.run(inputs[i : i + 1])[0].argmax(-1) for i in range(len(inputs))]
        tensor = backend.prepare(inputs[:1])
        backend.invoke(tensor)  # warm-up
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            backend.invoke(tensor)
            times.append(1000.0 * (time.perf_counter() - start))
    finally:
        backend.close()
    miou = mean_iou(confusion_matrix(ctx.reference.truth, np.stack(masks), ctx.manifest.num_classes))
    return miou, float(np.median(times))


def float_layer_dtypes(model: bytes | Path, names: Sequence[str]) -> dict[str, str | None]:
    """How each named layer output is computed in a TFLite model, read with LiteRT (no TensorFlow).

    ``float32`` when the tensor is float, or when it is the model's integer
    output made by a QUANTIZE op from a float tensor (a float last layer
    behind uint8 io); otherwise the tensor's integer dtype; None: not found.
    """
    from segedge.edge.runtime import tflite_interpreter_class

    interpreter_class = tflite_interpreter_class()
    source: dict[str, Any] = {"model_path": str(model)} if isinstance(model, Path) else {"model_content": model}
    resolver = getattr(importlib.import_module(interpreter_class.__module__), "OpResolverType", None)
    if resolver is not None:  # no XNNPACK: a delegated partition hides the ops inside it
        source["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = interpreter_class(**source)
    tensors = {d["name"]: d for d in interpreter.get_tensor_details()}
    dtype_of = {d["index"]: np.dtype(d["dtype"]).name for d in tensors.values()}
    producer = {out: op for op in interpreter._get_ops_details() for out in op["outputs"]}
    result: dict[str, str | None] = {}
    for name in names:
        detail = tensors.get(name)
        if detail is None:
            result[name] = None
            continue
        dtype = dtype_of[detail["index"]]
        op = producer.get(detail["index"])
        if dtype != "float32" and op and op["op_name"] == "QUANTIZE" and dtype_of.get(op["inputs"][0]) == "float32":
            dtype = "float32"
        result[name] = dtype
    return result


def io_dtypes(model: Path) -> dict[str, str]:
    backend = open_backend(model)
    try:
        return {"input": backend.input.dtype, "output": backend.output.dtype}
    finally:
        backend.close()


# --------------------------------------------------------------------------- re-quantization (TF)


def requantize(debugger: Any, float_layers: Sequence[str], int8_io: str) -> bytes:
    """The calibrated model quantized with ``float_layers`` left in float; uint8/int8 io kept."""
    import tensorflow as tf

    io_type = tf.uint8 if int8_io == "uint8" else tf.int8
    from segedge.quant.report import quiet_debugger

    try:
        from tensorflow.lite.python.convert import mlir_quantize
    except ImportError:  # internal module moved: the debugger's own route (float io)
        mlir_quantize = None
    with quiet_debugger():
        if mlir_quantize is not None:
            return mlir_quantize(
                debugger.calibrated_model,
                disable_per_channel=debugger.converter._experimental_disable_per_channel,
                input_data_type=io_type, output_data_type=io_type,
                denylisted_nodes=list(float_layers) or None)
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_layers))
        return debugger.get_nondebug_quantized_model()


def _fallback(ctx: QuantContext, artifact: str, layers: Sequence[str], k: str | int, max_miou_drop: float,
              ranking: str, build: Callable[[list[str], Path], None],
              float_check: Callable[[Path, list[str]], list[str]], scratch: Path, suffix: str) -> FallbackResult:
    """Search (``auto``) or apply a fixed K over ``layers`` (worst first); shared by TFLite and ONNX.

    ``build(names, path)`` writes the model with ``names`` left in float to ``path``;
    ``float_check(path, names)`` returns those of ``names`` really float in it. Each K's
    model stays in ``scratch``; only the applied one is read back.
    """
    check_bound(max_miou_drop)
    k = parse_k(k)
    if isinstance(k, int) and k > len(layers):
        raise ConfigError(f"--int8-fallback {k}: the {artifact} model has only {len(layers)} quantized layers")
    reference_miou = keras_miou(ctx)

    def model_path(count: int) -> Path:
        return scratch / f"fallback_{artifact}_k{count}{suffix}"

    def evaluate(count: int) -> Trial:
        names = list(layers[:count])
        path = model_path(count)
        build(names, path)
        floats = float_check(path, names)
        miou, p50 = score_model(path, ctx)
        drop = 100.0 * (reference_miou - miou)
        return Trial(count, miou, drop, drop <= max_miou_drop + 1e-9, p50, path.stat().st_size, floats,
                     [n for n in names if n not in floats])

    if k == AUTO:
        chosen, tried = search_smallest_k(evaluate, len(layers))
        applied, mode = chosen, "auto"
    else:
        tried = [evaluate(c) for c in sorted({0, int(k)})]
        fixed = next(t for t in tried if t.k == k)
        chosen, applied, mode = (int(k) if fixed.meets else None), int(k), "fixed"
    result = FallbackResult(mode, max_miou_drop, reference_miou, tried, chosen, [], ranking,
                            applied_k=applied, artifact=artifact)
    if applied is not None:
        result.model = model_path(applied).read_bytes()
        result.float_layers = next(t.float_layers for t in tried if t.k == applied)
        result.io_dtype = io_dtypes(model_path(applied))
    return result


def tflite_fallback(ctx: QuantContext, report: QuantReport, debugger: Any, scratch: Path, k: str | int,
                    max_miou_drop: float) -> FallbackResult:
    """TFLite int8: the debugger's calibrated model re-quantized with the K worst layers denylisted."""

    def build(names: list[str], path: Path) -> None:
        path.write_bytes(requantize(debugger, names, ctx.int8_io))

    def float_check(path: Path, names: list[str]) -> list[str]:
        # mlir_quantize ignores a denylisted fused TRANSPOSE_CONV (+BN/ReLU) output (measured: the op stays
        # int8 under a new name); such layers are reported as not_float rather than claimed float.
        dtypes = float_layer_dtypes(path, names)
        return [n for n in names if dtypes[n] == "float32"]

    return _fallback(ctx, TFLITE_INT8, report.worst(len(report.tflite)), k, max_miou_drop, report.ranking,
                     build, float_check, scratch, ".tflite")


def onnx_fallback_nodes(report: QuantReport) -> list[str]:
    """ONNX: the producer nodes of the report's activations, worst first, each once."""
    nodes: list[str] = []
    for row in report.onnx or []:
        if row.node and row.node not in nodes:
            nodes.append(row.node)
    return nodes


def onnx_float_nodes(model: Path, names: Sequence[str]) -> dict[str, bool | None]:
    """Per node name: True if onnxruntime runs it in float, False if it is QDQ-wrapped, None if absent.

    A node is QDQ-wrapped (fused into an integer kernel) when every input comes from a
    DequantizeLinear and every output goes only to QuantizeLinear nodes.
    """
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    by_name = {node.name: node for node in graph.node}
    result: dict[str, bool | None] = {}
    for name in names:
        node = by_name.get(name)
        if node is None:
            result[name] = None
            continue
        inputs_dq = all(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
                        for i in node.input if i)
        outputs_q = all(consumers.get(o) and all(c.op_type == "QuantizeLinear" for c in consumers[o])
                        for o in node.output)
        result[name] = not (inputs_dq and outputs_q)
    return result


def onnx_fallback(ctx: QuantContext, report: QuantReport, scratch: Path, k: str | int,
                  max_miou_drop: float) -> FallbackResult:
    """ONNX int8: the bundle's fp32 ONNX re-quantized with the K worst nodes in ``nodes_to_exclude``."""
    from segedge.export.onnx import quantize_onnx
    from segedge.export.options import CalibMethod

    if report.onnx is None or ONNX_INT8 not in ctx.manifest.artifacts or ONNX_FP32 not in ctx.manifest.artifacts:
        raise ConfigError(f"{ctx.bundle}: the ONNX float fallback needs the onnx and onnx-int8 artifacts")
    info = ctx.manifest.artifacts[ONNX_INT8]
    fp32_path = ctx.bundle / ctx.manifest.artifacts[ONNX_FP32].file
    method = CalibMethod(info.details.get("calibration_method", CalibMethod.minmax.value))
    reduce_range = bool(info.details.get("reduce_range", True))
    input_name = _onnx_input_name(fp32_path)
    nodes = onnx_fallback_nodes(report)
    cache = scratch / "onnx_calibration_cache.json"

    work = scratch / "onnx_requantize"  # quantize_onnx's intermediates, overwritten for each K
    work.mkdir(exist_ok=True)

    def build(names: list[str], path: Path) -> None:
        converted = quantize_onnx(fp32_path, work, ctx.calibration, input_name, method, reduce_range,
                                  nodes_to_exclude=names, calibration_cache=cache)
        path.write_bytes(converted.data)

    def float_check(path: Path, names: list[str]) -> list[str]:
        floats = onnx_float_nodes(path, names)
        return [n for n in names if floats[n]]

    return _fallback(ctx, ONNX_INT8, nodes, k, max_miou_drop, report.ranking, build, float_check, scratch, ".onnx")


def _onnx_input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initializers)


# --------------------------------------------------------------------------- bundle update


def report_denylist(result: FallbackResult, k: int) -> list[str]:
    trial = next(t for t in result.tried if t.k == k)
    return [*trial.float_layers, *trial.not_float]


def replace_int8_artifact(ctx: QuantContext, result: FallbackResult, k: int) -> None:
    """Swap the bundle's int8 file (``result.artifact``) and its manifest entry; on failure the old file is restored."""
    from segedge.export.verify import read_io, verify_artifact
    from segedge.targets import TARGETS

    if result.model is None:
        return
    manifest = ctx.manifest
    info = manifest.artifacts[result.artifact]
    path = ctx.bundle / info.file
    backup = path.read_bytes()
    document = metadata.read_artifact(path)  # the replaced file's own metadata goes into the new one
    onnx = result.artifact == ONNX_INT8
    try:
        data = result.model if document is None else metadata.embed(result.model, info.runtime, document)
        fileio.write_bytes(path, data)
        tensor_in, tensor_out = read_io(path)
        info.input, info.output = tensor_in, tensor_out
        info.sha256, info.bytes = fileio.sha256_file(path), path.stat().st_size
        info.converter = ONNX_REQUANTIZER if onnx else REQUANTIZER
        trials = {t.k: t for t in result.tried}
        info.details.update({
            "fallback_k": k, "denylisted_layers": report_denylist(result, k),
            "float_layers": list(result.float_layers), "fallback_ranking": result.ranking,
            "fallback_mode": result.mode, "max_miou_drop": result.max_miou_drop,
            "io_dtype": {"input": tensor_in.dtype, "output": tensor_out.dtype},
            "fallback_p50_ms": trials[k].p50_ms if k in trials else None,
        })
        if onnx:
            info.details["nodes_to_exclude"] = report_denylist(result, k)
        else:
            info.details.update({
                "ops": "TFLITE_BUILTINS_INT8 + float builtins (float fallback)" if k else info.details.get("ops"),
                "int8_io": tensor_in.dtype if tensor_in.dtype in ("uint8", "int8") else info.details.get("int8_io"),
            })
        info.verify = verify_artifact(path, TARGETS[result.artifact], ctx.reference, manifest.preprocess,
                                      manifest.num_classes)
        manifest.save(ctx.bundle / MANIFEST_NAME)
        result.replaced = True
    except BaseException:
        fileio.write_bytes(path, backup)
        raise


@dataclass
class FallbackRun:
    """The fallback of each int8 artifact handled: TFLite always, ONNX when the report has its table."""

    tflite: FallbackResult
    onnx: FallbackResult | None = None

    @property
    def results(self) -> list[FallbackResult]:
        return [r for r in (self.tflite, self.onnx) if r is not None]


def fallback_search(run_dir: str | os.PathLike[str], bundle_dir: str | os.PathLike[str], k: str | int = AUTO,
                    max_miou_drop: float = 1.0, *, samples: int = 8, onnx: bool = False, replace: bool = True,
                    out: str | os.PathLike[str] | None = None,
                    data_root: str | os.PathLike[str] | None = None) -> FallbackRun:
    """Report, then search/apply the float fallback for the int8 TFLite (and, with ``onnx``, ONNX) model.

    Each artifact is replaced when its applied K is > 0. Writes quant_report.* (with the
    search tables) to ``out`` (default: the bundle). In ``auto`` mode, raises ParityError
    after writing the report when an artifact's search met no bound (that artifact is left
    as it was); a fixed K is applied either way (``result.met`` says whether it met the bound).
    """
    k = parse_k(k)
    check_bound(max_miou_drop)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ctx = load_context(run_dir, bundle_dir, data_root)
    if TFLITE_INT8 not in ctx.manifest.artifacts:
        raise ConfigError(f"{ctx.bundle}: has no int8 TFLite artifact to fall back from")
    with tempfile.TemporaryDirectory(prefix="segedge.") as scratch_name:
        scratch = Path(scratch_name)
        report, debug = build_report(ctx, scratch, samples, onnx)
        run = FallbackRun(tflite_fallback(ctx, report, debug.debugger, scratch, k, max_miou_drop))
        if report.onnx is not None:
            run.onnx = onnx_fallback(ctx, report, scratch, k, max_miou_drop)
        for result in run.results:
            if replace and result.applied_k:  # K = 0 is the bundle's model already
                replace_int8_artifact(ctx, result, result.applied_k)
    if run.onnx is None:
        report.notes.append("the float fallback changed the TFLite int8 model only (no ONNX table: pass --onnx "
                            "with a bundle that has onnx and onnx-int8)")
    write_report(report, out if out is not None else ctx.bundle, run.tflite.to_dict(),
                 None if run.onnx is None else run.onnx.to_dict())
    missed = [r for r in run.results if r.mode == AUTO and not r.met]
    if missed:
        raise ParityError("; ".join(
            f"{r.artifact}: no float fallback met --max-miou-drop {max_miou_drop:g} (left unchanged): "
            + ", ".join(f"K={t.k}: drop {t.drop:.2f}" for t in sorted(r.tried, key=lambda t: t.k))
            for r in missed))
    return run
