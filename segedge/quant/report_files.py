"""``quant_report.{json,md,png}``: the per-layer tables and the per-K fallback tables, written atomically.

The JSON holds the report (schema in ``report.QuantReport.to_dict``) plus,
after a fallback, one ``fallback`` entry per artifact
(``FallbackResult.to_dict``: every K tried, the pick, the noise estimate and
whether it was applied).

Where they go follows the one output rule (``segedge.util.outputs``), decided by ``report_target`` before
any slow work: into the bundle (the default) they are added under the bundle's marker, which records
them once written, and a quant_report.* there that segedge did not record (the user's own) is never
replaced; any other ``--out`` folder is a quant report output of its own (new, empty, or with
``overwrite`` one quant-report wrote; a folder of user files is refused, exit 8).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any

from segedge.contract.manifest import MANIFEST_NAME
from segedge.quant.layers import LayerError
from segedge.quant.report import REPORT_JSON, QuantReport
from segedge.util import fileio, outputs

REPORT_MD = "quant_report.md"
REPORT_PNG = "quant_report.png"
REPORT_NAMES = (REPORT_JSON, REPORT_MD, REPORT_PNG)
PLOT_WORST = 15


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


def verdict(fallback: dict[str, Any]) -> str:
    """One sentence: did the search meet the bound, and what happened to the bundle."""
    if fallback.get("failed"):
        return f"search FAILED: {fallback.get('refused')}; the bundle's {fallback['artifact']} model was left unchanged"
    k = fallback.get("applied_k")
    met = "met the bound" if fallback.get("met") else "did NOT meet the bound"
    if fallback.get("replaced"):
        return f"K={k} {met}; written to the bundle and re-measured as written"
    if k == 0:
        return f"K=0 (plain int8) {met}; the bundle's model was left unchanged"
    return f"K={k} {met}; not written: the bundle was left unchanged because a fallback failed"


def noise_line(fallback: dict[str, Any]) -> str:
    noise = fallback.get("noise")
    count = fallback.get("reference_images", 0)
    if noise is None or not math.isfinite(noise):
        return f"mIoU noise: cannot be estimated from {count} reference image(s); the bound is not meaningful."
    text = (f"mIoU noise: the plain int8 drop varies by +-{noise:.2f} points (bootstrap std over the {count} "
            f"reference images; 95 %: +-{1.96 * noise:.2f}).")
    if not fallback.get("bound_meaningful"):
        text += (f" The reference set is too small for --fallback-max-drop {fallback['max_miou_drop']:g} to be "
                 "meaningful; re-export with a larger --eval-images.")
    return text


def fallback_lines(fallback: dict[str, Any]) -> list[str]:
    """The per-K table (every K tried) with the bound, the noise and the verdict."""
    lines = [f"Keras reference mIoU {100 * fallback['keras_miou']:.2f}; bound: drop <= "
             f"{fallback['max_miou_drop']:g} points; mode {fallback['mode']}; sizes against the "
             f"{fallback.get('size_basis') or 'fp32 model'}.", "", noise_line(fallback), "",
             "| K float layers | float | mIoU | drop (points) | +-noise | p50 ms | bytes | x fp32 | meets bound |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for t in fallback["tried"]:
        meets = ("yes, too large" if t.get("too_large") else "yes") if t["meets"] else "no"
        lines.append(f"| {t['k']} | {len(t.get('float_layers') or [])} | {100 * t['miou']:.2f} | {t['drop']:.2f} | "
                     f"{_fmt(t.get('drop_noise'), 3)} | {_fmt(t.get('p50_ms'), 4)} | {t.get('bytes', '-')} | "
                     f"{_fmt(t.get('size_ratio'), 3)} | {meets} |")
    lines += ["", verdict(fallback)]
    if fallback.get("float_layers"):
        lines.append("Float layers: " + ", ".join(f"`{n}`" for n in fallback["float_layers"]))
    return lines


def render_markdown(report: QuantReport, fallbacks: list[dict[str, Any]] = ()) -> str:
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
    for fallback in fallbacks:
        lines += [f"## Float fallback search: {fallback['artifact']}", "", *fallback_lines(fallback), ""]
    if report.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in report.notes], ""]
    return "\n".join(lines)


def plot_worst(rows: list[LayerError], title: str, count: int = PLOT_WORST) -> bytes:
    """Horizontal bars of RMSE / scale for the ``count`` worst layers (PNG bytes)."""
    from segedge.util.plotting import figure_png, png_canvas

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


def _is_bundle(folder: Path) -> bool:
    marker = outputs.read_marker(folder)
    return marker["kind"] == "bundle" if marker else (folder / MANIFEST_NAME).is_file()


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def report_target(out: str | os.PathLike[str] | None, bundle: str | os.PathLike[str] | None,
                  overwrite: bool = False) -> outputs.Claim:
    """May quant_report.* be written to ``out`` (default: the bundle)? Decided before the slow work.

    The bundle (``out`` omitted, or naming the bundle): ``outputs.claim_names``, each of the three names
    either absent or recorded by segedge in the bundle's marker. Any other folder: an output of kind
    quant-report (``outputs.claim``; ``overwrite`` replaces only what an earlier quant-report wrote).
    """
    folder = Path(out if out is not None else bundle)  # type: ignore[arg-type]
    into_bundle = _same_folder(folder, Path(bundle)) if bundle is not None else _is_bundle(folder)
    if into_bundle:
        return outputs.claim_names(folder, "bundle", REPORT_NAMES)
    return outputs.claim(folder, "quant-report", overwrite)


def write_report(report: QuantReport, out: str | os.PathLike[str],
                 fallbacks: list[dict[str, Any]] = (), *, target: outputs.Claim | None = None) -> dict[str, Path]:
    """quant_report.{json,md,png} in ``out`` (atomic); the plot is skipped with a note without matplotlib.

    ``target`` is ``report_target``'s decision, taken before the slow work (taken here otherwise).
    Each file is recorded in the marker once written.
    """
    if target is None:
        target = report_target(out, None)
    elif target.kind == "bundle":  # minutes may have passed: a file the user put there since is kept too
        target = outputs.claim_names(target.path, "bundle", REPORT_NAMES)
    if target.kind == "bundle":
        written: dict[str, Path] = {}
        try:
            _write_files(report, target.path, fallbacks, written)
        finally:
            target.record(path.name for path in written.values())
        return written
    written = {}
    with outputs.writing(target, only=REPORT_NAMES.__contains__) as folder:
        _write_files(report, folder, fallbacks, written)
    return written


def _write_files(report: QuantReport, folder: Path, fallbacks: list[dict[str, Any]],
                 written: dict[str, Path]) -> None:
    """The three files into ``folder``; ``written`` gains each one once it is in place."""
    if importlib.util.find_spec("matplotlib") is None:
        report.notes.append("quant_report.png skipped: matplotlib is not installed (pip install \"segedge[bench]\")")
    else:
        fileio.write_bytes(folder / REPORT_PNG, plot_worst(report.tflite, f"TFLite int8: worst {PLOT_WORST} layers"))
        written["png"] = folder / REPORT_PNG
    data = report.to_dict()
    if fallbacks:
        data["fallback"] = {f["artifact"]: f for f in fallbacks}
    fileio.write_json(folder / REPORT_JSON, data)
    written["json"] = folder / REPORT_JSON
    fileio.write_text(folder / REPORT_MD, render_markdown(report, list(fallbacks)))
    written["md"] = folder / REPORT_MD
