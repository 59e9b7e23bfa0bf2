"""Per-layer int8 quantization error: which layers does int8 hurt?

TFLite: ``tf.lite.experimental.QuantizationDebugger`` is built from the same
converter the bundle's int8 artifact came from (``TFLiteSource`` +
``tflite.configure_converter``, calibrated on the manifest's calibration ids). Its debug
model pairs every quantized op output with the float op run on the *same*
(dequantized) input through a ``NumericVerify`` op, so each row is the error
that layer adds by itself, not the error accumulated upstream. One pass over
the debug images with all tensors preserved gives, per layer: RMSE, mean and
max |error|, the quantization scale, RMSE / scale (the TFLite debugging guide's
"suspect" measure: uniform rounding alone gives ~0.29) and the correlation of
the dequantized output with the float output.

ONNX: ``onnxruntime.quantization.qdq_loss_debug`` collects every activation of
the fp32 and the QDQ model; per quantized activation: RMSE of its own
quantize/dequantize (pre vs post QDQ), the scale, and RMSE / correlation of the
QDQ model's activation against the fp32 model's (accumulated error).

Reports: ``quant_report.json`` (schema below), ``quant_report.md`` and a bar
plot ``quant_report.png`` of the worst layers, all written atomically.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segedge import fileio
from segedge.errors import ConfigError, ExportError, ModelError
from segedge.export.calibration import CalibrationSource, load_calibration
from segedge.export.reference import Reference
from segedge.export.run import RunFolder, open_run
from segedge.manifest import REFERENCE_NAME, Manifest, load_manifest
from segedge.preprocess import scale_pixels
from segedge.progress import track

SCHEMA_VERSION = 1
REPORT_JSON = "quant_report.json"
REPORT_MD = "quant_report.md"
REPORT_PNG = "quant_report.png"
PLOT_WORST = 15
RANKING = "rmse_over_scale"
NUMERIC_VERIFY = "NumericVerify"
TFLITE_INT8 = "int8"
ONNX_FP32, ONNX_INT8 = "onnx", "onnx-int8"


# --------------------------------------------------------------------------- data


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


def _sort_key(row: LayerError) -> tuple[float, float]:
    ratio = row.rmse_over_scale if row.rmse_over_scale is not None and math.isfinite(row.rmse_over_scale) else -1.0
    return (-ratio, -row.rmse)


def sort_rows(rows: list[LayerError]) -> list[LayerError]:
    """Worst first: RMSE / scale (the TFLite guide's measure), ties by RMSE."""
    return sorted(rows, key=_sort_key)


class _Stats:
    """Running sums for RMSE, mean error, max |error| and pooled Pearson correlation."""

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


def _ratio(rmse: float, scale: float | None) -> float | None:
    return rmse / scale if scale else None


# --------------------------------------------------------------------------- context


@dataclass
class QuantContext:
    """A run and its bundle, checked to belong together; what debugging and fallback both need."""

    run: RunFolder
    bundle: Path
    manifest: Manifest
    reference: Reference
    calibration: CalibrationSource

    @property
    def int8_io(self) -> str:
        info = self.manifest.artifacts.get(TFLITE_INT8)
        io_type = (info.details.get("int8_io") if info else None) or self.manifest.calibration.get("int8_io")
        return str(io_type or "uint8")

    def debug_batches(self, samples: int) -> tuple[list[str], list[np.ndarray]]:
        """``samples`` float32 (1,H,W,3) batches: held-out reference images first half, calibration the rest."""
        from_reference = min(len(self.reference), (samples + 1) // 2)
        from_calib = min(len(self.calibration), samples - from_reference)
        from_reference = min(len(self.reference), samples - from_calib)
        ids = [f"reference:{i}" for i in self.reference.ids[:from_reference]]
        ids += [f"calibration:{i}" for i in self.calibration.ids[:from_calib]]
        pixels = np.concatenate([self.reference.inputs[:from_reference], self.calibration.pixels[:from_calib]])
        spec = self.manifest.preprocess  # a pixel-input bundle's graph takes the pixels (issue 16)
        if spec.pixels_in:
            return ids, [p[None].astype(np.float32) for p in pixels]
        return ids, [scale_pixels(p[None], spec).astype(np.float32) for p in pixels]


def load_context(run_dir: str | os.PathLike[str], bundle_dir: str | os.PathLike[str],
                 data_root: str | os.PathLike[str] | None = None) -> QuantContext:
    """Open RUN and BUNDLE, refuse a pair that does not belong together, reload the calibration images."""
    run = open_run(run_dir)
    bundle = Path(bundle_dir).expanduser()
    manifest = load_manifest(bundle)
    recorded = manifest.source_model.get("sha256")
    if recorded and recorded != fileio.sha256_file(run.model_path):
        raise ConfigError(f"{bundle}: was exported from a different model than {run.model_path} "
                          "(source sha256 differs); pass the run the bundle was exported from")
    if TFLITE_INT8 not in manifest.artifacts and ONNX_INT8 not in manifest.artifacts:
        raise ConfigError(f"{bundle}: has no int8 artifact; export with --formats int8 (or onnx-int8) first")
    ids = [str(i) for i in manifest.calibration.get("ids") or []]
    if not ids:
        raise ConfigError(f"{bundle}: manifest records no calibration images; re-export with int8 targets")
    reference = Reference.load(bundle / REFERENCE_NAME)
    calibration = load_calibration(run.dataset(data_root), ids, len(ids), manifest.preprocess)
    if len(calibration) != len(ids):
        raise ExportError(f"{bundle}: only {len(calibration)} of the {len(ids)} calibration images were found")
    return QuantContext(run, bundle, manifest, reference, calibration)


# --------------------------------------------------------------------------- TFLite


@contextlib.contextmanager
def quiet_debugger() -> Iterator[None]:
    from segedge.export.tflite import quiet_converter as tflite_quiet

    with tflite_quiet(), contextlib.redirect_stderr(io.StringIO()):
        yield


@dataclass
class TFLiteDebug:
    """The debugger (calibrated model kept: fallback re-quantizes it) and its per-layer rows."""

    debugger: Any
    rows: list[LayerError]
    converter: Any


def build_debugger(ctx: QuantContext, scratch: Path, batches: Sequence[np.ndarray] = ()) -> Any:
    """``QuantizationDebugger`` from the exact converter configuration of the bundle's int8 artifact."""
    import tensorflow as tf

    from segedge.export.graph import prepare_export_model, rewrite_plan
    from segedge.export.options import IntIO
    from segedge.export.run import check_model_matches, load_keras_model
    from segedge.export.tflite import TFLiteSource, configure_converter
    from segedge.targets import TARGETS, Precision

    model = load_keras_model(ctx.run.model_path)
    check_model_matches(model, ctx.run)
    # The graph the bundle's int8 TFLite was converted from (the same partial sub-pixel rewrite).
    spec = ctx.manifest.preprocess
    export = prepare_export_model(model, plan=rewrite_plan(TARGETS["int8"]), scaling=spec if spec.pixels_in else None)
    converter, _, _ = TFLiteSource(export, scratch).converter()
    configure_converter(converter, Precision.int8, ctx.calibration, IntIO(ctx.int8_io))
    data = list(batches)
    with quiet_debugger():
        return tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=lambda: ([b] for b in data))


def layer_name(quantized_tensor: str) -> str:
    """The float model's tensor name (what ``denylisted_nodes`` takes) of a debug model's quantized tensor.

    The debug model renames a quantized output by appending one digit; the
    debugger's own ``layer_statistics_dump`` strips it the same way.
    """
    return quantized_tensor[:-1] if quantized_tensor[-1:].isdigit() else quantized_tensor


def tflite_layer_rows(debug_model: bytes, batches: Sequence[np.ndarray]) -> list[LayerError]:
    """One pass of the NumericVerify debug model with every tensor preserved -> per-layer rows."""
    import tensorflow as tf

    # No XNNPACK: a delegated partition keeps no intermediate tensors and hides the op types.
    with quiet_debugger():
        interpreter = tf.lite.Interpreter(
            model_content=debug_model, experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # the debugger itself walks ops this way
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    producer = {out: op["op_name"] for op in ops for out in op["outputs"]}
    verify = [op for op in ops if op["op_name"] == NUMERIC_VERIFY]
    if not verify:
        raise ExportError("the TFLite debug model has no NumericVerify ops: nothing was quantized")
    stats = {op["index"]: _Stats() for op in verify}
    index_in = interpreter.get_input_details()[0]["index"]
    for batch in track(batches, "per-layer int8 error (TFLite)", total=len(batches)):
        interpreter.set_tensor(index_in, batch)
        interpreter.invoke()
        for op in verify:
            q_idx, f_idx = op["inputs"][:2]
            detail = tensors[q_idx]
            scale, zero_point = detail["quantization"]
            quant = interpreter.get_tensor(q_idx).astype(np.float64)
            dequant = (quant - zero_point) * scale if scale else quant
            stats[op["index"]].add(interpreter.get_tensor(f_idx), dequant)
    rows = []
    for op in verify:
        q_idx = op["inputs"][0]
        detail, s = tensors[q_idx], stats[op["index"]]
        scale, zero_point = detail["quantization"]
        scale = float(scale) or None
        rows.append(LayerError(
            name=layer_name(detail["name"]), op=producer.get(q_idx, "?"), rmse=s.rmse, scale=scale,
            rmse_over_scale=_ratio(s.rmse, scale), correlation=s.correlation, mean_error=s.mean_error,
            max_abs_error=s.max_abs, num_elements=int(np.prod(detail["shape"])),
            zero_point=int(zero_point) if scale else None))
    return sort_rows(rows)


def debug_tflite_context(ctx: QuantContext, scratch: Path, samples: int) -> tuple[TFLiteDebug, list[str]]:
    ids, batches = ctx.debug_batches(samples)
    debugger = build_debugger(ctx, scratch, batches)
    rows = tflite_layer_rows(debugger.quant_model, batches)
    return TFLiteDebug(debugger, rows, debugger.converter), ids


# --------------------------------------------------------------------------- ONNX


def _list_reader(name: str, batches: Sequence[np.ndarray]):
    """A ``CalibrationDataReader`` (``collect_activations`` iterates it) over fixed batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class ListReader(CalibrationDataReader):
        def __init__(self) -> None:
            self.position = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.position >= len(batches):
                return None
            self.position += 1
            return {name: batches[self.position - 1]}

        def rewind(self) -> None:
            self.position = 0

    return ListReader()


def _onnx_scales(model_path: Path) -> tuple[dict[str, float], dict[str, int], dict[str, tuple[str, str]]]:
    """Per quantized activation: scale and zero point (from its QuantizeLinear), and its producer node."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scales, zero_points, producers = {}, {}, {}
    for node in model.graph.node:
        for out in node.output:
            producers[out] = (node.name, node.op_type)
        if node.op_type == "QuantizeLinear" and len(node.input) >= 2 and node.input[1] in init:
            scale = init[node.input[1]]
            if scale.size == 1:
                scales[node.input[0]] = float(scale.ravel()[0])
                if len(node.input) > 2 and node.input[2] in init:
                    zero_points[node.input[0]] = int(init[node.input[2]].ravel()[0])
    return scales, zero_points, producers


def onnx_layer_rows(fp32_path: Path, int8_path: Path, batches: Sequence[np.ndarray], scratch: Path) -> list[LayerError]:
    """qdq_loss_debug: activations of both models on ``batches``, matched by tensor name."""
    import onnxruntime as ort
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    input_name = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    aug_float, aug_qdq = scratch / "float_aug.onnx", scratch / "qdq_aug.onnx"
    modify_model_output_intermediate_tensors(str(fp32_path), str(aug_float))
    modify_model_output_intermediate_tensors(str(int8_path), str(aug_qdq))
    float_acts = collect_activations(str(aug_float), _list_reader(input_name, batches))
    qdq_acts = collect_activations(str(aug_qdq), _list_reader(input_name, batches))
    matching = create_activation_matching(qdq_acts, float_acts)
    scales, zero_points, producers = _onnx_scales(int8_path)
    rows = []
    for name, match in matching.items():
        pre, post = match.get("pre_qdq"), match.get("post_qdq")
        if not pre or not post:
            continue
        local, cross = _Stats(), _Stats()
        for a, b in zip(pre, post, strict=True):
            local.add(a, b)
        floats = match.get("float")
        if floats:
            for a, b in zip(floats, post, strict=True):
                cross.add(a, b)
        scale = scales.get(name)
        node, op = producers.get(name, (None, "?"))
        rows.append(LayerError(
            name=name, op=op, rmse=local.rmse, scale=scale, rmse_over_scale=_ratio(local.rmse, scale),
            correlation=cross.correlation if floats else local.correlation, mean_error=local.mean_error,
            max_abs_error=local.max_abs, num_elements=int(np.asarray(pre[0]).size),
            zero_point=zero_points.get(name), node=node, float_rmse=cross.rmse if floats else None))
    return sort_rows(rows)


# --------------------------------------------------------------------------- report files


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def _table(rows: list[LayerError], onnx: bool = False) -> list[str]:
    head = "| # | layer | op | RMSE | scale | RMSE/scale | corr. | max abs err |"
    line = "|---|---|---|---:|---:|---:|---:|---:|"
    if onnx:
        head += " RMSE vs fp32 |"
        line += "---:|"
    out = [head, line]
    for i, r in enumerate(rows, 1):
        cells = (f"| {i} | `{r.name}` | {r.op} | {_fmt(r.rmse)} | {_fmt(r.scale)} | {_fmt(r.rmse_over_scale, 3)} | "
                 f"{_fmt(r.correlation, 5)} | {_fmt(r.max_abs_error)} |")
        if onnx:
            cells += f" {_fmt(r.float_rmse)} |"
        out.append(cells)
    return out


def render_markdown(report: QuantReport, fallback: dict[str, Any] | None = None,
                    onnx_fallback: dict[str, Any] | None = None) -> str:
    lines = [
        "# int8 quantization report", "",
        f"Bundle: `{report.bundle}`  ", f"Created: {report.created}  ",
        f"Debug images: {report.samples.get('count', 0)} ({report.samples.get('reference', 0)} held-out reference, "
        f"{report.samples.get('calibration', 0)} calibration)", "",
        f"Rows are sorted worst first by **{report.ranking}** (RMSE divided by the quantization step; rounding "
        "alone gives about 0.29, well above that means the range or the layer itself is the problem). "
        "TFLite rows are each layer's own error (float op vs int8 op on the same input); correlation is "
        "between the float and the dequantized int8 output.", "",
        f"## TFLite int8 ({len(report.tflite)} quantized layers)", "", *_table(report.tflite), "",
    ]
    if report.onnx is not None:
        lines += [f"## ONNX int8 QDQ ({len(report.onnx)} quantized activations)", "",
                  "RMSE / scale: the activation's own quantize-dequantize error; RMSE vs fp32 and correlation: "
                  "the QDQ model's activation against the fp32 model's (accumulated).", "",
                  *_table(report.onnx, onnx=True), ""]
    if fallback:
        lines += ["## Float fallback search: TFLite int8", "", *fallback_lines(fallback), ""]
    if onnx_fallback:
        lines += ["## Float fallback search: ONNX int8 (nodes_to_exclude)", "", *fallback_lines(onnx_fallback), ""]
    if report.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in report.notes], ""]
    return "\n".join(lines)


def fallback_lines(fallback: dict[str, Any]) -> list[str]:
    lines = [f"Keras reference mIoU {100 * fallback['keras_miou']:.2f}; bound: drop <= "
             f"{fallback['max_miou_drop']:g} points; mode {fallback['mode']}.", "",
             "| K float layers | mIoU | drop (points) | p50 ms | bytes | meets bound |",
             "|---:|---:|---:|---:|---:|:---:|"]
    for t in fallback["tried"]:
        lines.append(f"| {t['k']} | {100 * t['miou']:.2f} | {t['drop']:.2f} | {_fmt(t.get('p50_ms'), 4)} | "
                     f"{t.get('bytes', '-')} | {'yes' if t['meets'] else 'no'} |")
    chosen = fallback.get("chosen_k")
    lines += ["", f"Chosen K: {chosen if chosen is not None else 'none met the bound'}"
              + (f"; float layers: {', '.join(f'`{n}`' for n in fallback['float_layers'])}"
                 if fallback.get("float_layers") else "")]
    return lines


def plot_worst(rows: list[LayerError], title: str, count: int = PLOT_WORST) -> bytes:
    """Horizontal bars of RMSE / scale for the ``count`` worst layers (PNG bytes)."""
    from segedge.plotting import figure_png, png_canvas

    worst = rows[:count][::-1]
    with png_canvas((8, 0.32 * max(len(worst), 3) + 1.4), 100) as (figure, axes):
        values = [r.rmse_over_scale if r.rmse_over_scale is not None else 0.0 for r in worst]
        labels = [(r.name if len(r.name) <= 48 else "..." + r.name[-45:]) + f" [{r.op}]" for r in worst]
        axes.barh(range(len(worst)), values, color="tab:red")
        axes.set_yticks(range(len(worst)), labels, fontsize=7)
        axes.axvline(0.29, color="grey", linestyle="--", linewidth=0.8)
        axes.set_xlabel("RMSE / quantization scale (dashed: rounding alone, ~0.29)")
        axes.set_title(title, fontsize=9)
        return figure_png(figure)


def write_report(report: QuantReport, out: str | os.PathLike[str],
                 fallback: dict[str, Any] | None = None,
                 onnx_fallback: dict[str, Any] | None = None) -> dict[str, Path]:
    """quant_report.{json,md,png} in ``out`` (atomic); the plot is skipped with a note without matplotlib."""
    folder = Path(out)
    written: dict[str, Path] = {}
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        report.notes.append("quant_report.png skipped: matplotlib is not installed (pip install \"segedge[bench]\")")
    else:
        fileio.write_bytes(folder / REPORT_PNG, plot_worst(report.tflite, f"TFLite int8: worst {PLOT_WORST} layers"))
        written["png"] = folder / REPORT_PNG
    data = report.to_dict()
    if fallback is not None:
        data["fallback"] = fallback
    if onnx_fallback is not None:
        data["onnx_fallback"] = onnx_fallback
    fileio.write_json(folder / REPORT_JSON, data)
    fileio.write_text(folder / REPORT_MD, render_markdown(report, fallback, onnx_fallback))
    written.update(json=folder / REPORT_JSON, md=folder / REPORT_MD)
    return written


# --------------------------------------------------------------------------- entry points


def check_samples(samples: int) -> None:
    if samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {samples}")


def build_report(ctx: QuantContext, scratch: Path, samples: int, onnx: bool = True) -> tuple[QuantReport, TFLiteDebug]:
    """The TFLite table (and the ONNX one when the bundle has both ONNX models and ``onnx``)."""
    check_samples(samples)
    if TFLITE_INT8 not in ctx.manifest.artifacts:
        raise ConfigError(f"{ctx.bundle}: has no int8 TFLite artifact; export with --formats int8")
    debug, ids = debug_tflite_context(ctx, scratch, samples)
    notes: list[str] = []
    onnx_rows = None
    if onnx:
        if ONNX_INT8 in ctx.manifest.artifacts and ONNX_FP32 in ctx.manifest.artifacts:
            _, batches = ctx.debug_batches(samples)
            onnx_rows = onnx_layer_rows(ctx.bundle / ctx.manifest.artifacts[ONNX_FP32].file,
                                        ctx.bundle / ctx.manifest.artifacts[ONNX_INT8].file, batches, scratch)
        else:
            notes.append("ONNX table skipped: the bundle needs both the onnx and onnx-int8 artifacts")
    report = QuantReport(
        tflite=debug.rows, onnx=onnx_rows, bundle=str(ctx.bundle), notes=notes,
        samples={"count": len(ids), "reference": sum(i.startswith("reference:") for i in ids),
                 "calibration": sum(i.startswith("calibration:") for i in ids), "ids": ids},
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return report, debug


def debug_tflite(run_dir: str | os.PathLike[str], bundle_dir: str | os.PathLike[str], samples: int = 8, *,
                 onnx: bool = True, out: str | os.PathLike[str] | None = None,
                 data_root: str | os.PathLike[str] | None = None) -> QuantReport:
    """Per-layer int8 error of BUNDLE's int8 model(s); writes quant_report.* to ``out`` (default: the bundle)."""
    check_samples(samples)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ctx = load_context(run_dir, bundle_dir, data_root)
    with tempfile.TemporaryDirectory(prefix="segedge.") as scratch:
        report, _ = build_report(ctx, Path(scratch), samples, onnx)
    write_report(report, out if out is not None else ctx.bundle)
    return report
