"""``segedge quant-report RUN --bundle BUNDLE``: which layers int8 hurts, and an optional float fallback.

TensorFlow and onnxruntime are imported inside the command body, so
``segedge quant-report --help`` works on an edge install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segedge.commands import user_errors
from segedge.commands._vocab import renamed_value
from segedge.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command(name="quant-report")(quant_report)


@user_errors
def quant_report(
    run: Annotated[Path, typer.Argument(help="Run folder the bundle was exported from (model.keras, config.json).")],
    bundle: Annotated[Path, typer.Option("--bundle", "-b", help="Bundle folder with an int8 TFLite artifact.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for quant_report.{md,json,png} (default: the bundle).")] = None,
    samples: Annotated[int, typer.Option(
        help="Debug images (half held-out reference, half calibration) for the per-layer error.")] = 8,
    onnx: Annotated[bool, typer.Option(
        "--onnx/--no-onnx", help="Also tabulate the ONNX int8 QDQ model (needs onnx and onnx-int8).")] = True,
    int8_fallback: Annotated[str | None, typer.Option(
        "--int8-fallback", help="Leave the K worst layers in float and replace the bundle's int8 TFLite model "
                                "(and its ONNX int8 model, with --onnx); 'auto' picks the smallest K within "
                                "--fallback-max-drop, per model.")] = None,
    max_miou_drop: Annotated[float, typer.Option(
        "--fallback-max-drop", metavar="POINTS",
        help="Bound for --int8-fallback auto: mIoU drop vs the Keras model on the reference set, in points.")]
    = 1.0,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Dataset root, if it moved since training (default: config.json's data_root).")] = None,
    old_max_drop: Annotated[float | None, typer.Option("--max-miou-drop", hidden=True)] = None,
) -> None:
    """Per-layer int8 quantization error (TFLite QuantizationDebugger, ONNX qdq_loss_debug) and float fallback."""
    from segedge.optional import require_extra, require_runtimes

    require_extra("export")  # the TFLite debugger and the ONNX quantizer, before anything slow
    require_runtimes(["tflite"], extra="export")
    from segedge.quant.fallback import check_bound, parse_k
    from segedge.quant.report import check_samples

    max_miou_drop = renamed_value(max_miou_drop, old_max_drop, "--fallback-max-drop", "--max-miou-drop", 1.0)
    check_samples(samples)
    check_bound(max_miou_drop)
    k = parse_k(int8_fallback) if int8_fallback is not None else None
    if not (bundle / "manifest.json").is_file():
        raise ConfigError(f"{bundle}: not a bundle (no manifest.json); export one with 'segedge export RUN'")
    report_and_fallback(run, bundle, out=out if out is not None else bundle, samples=samples, onnx=onnx,
                        k=k, max_miou_drop=max_miou_drop, data=data)


def report_and_fallback(run: Path, bundle: Path, *, out: Path, samples: int, onnx: bool, k: int | str | None,
                        max_miou_drop: float, data: Path | None) -> None:
    """The per-layer report, and with ``k`` the float-fallback search; shared by export and quant-report."""
    target = out
    from segedge.quant.report import REPORT_MD, debug_tflite

    if k is None:
        report = debug_tflite(run, bundle, samples, onnx=onnx, out=target, data_root=data)
        _print_worst(report)
        typer.echo(f"wrote {target / REPORT_MD} (+ .json, .png)")
        return

    from segedge.quant.fallback import fallback_search

    run_result = fallback_search(run, bundle, k, max_miou_drop, samples=samples, onnx=onnx, out=target,
                                 data_root=data)
    for result in run_result.results:
        typer.echo(f"{result.artifact}: Keras mIoU {100 * result.keras_miou:.2f} %; "
                   f"bound: drop <= {max_miou_drop:g} points")
        for trial in sorted(result.tried, key=lambda t: t.k):
            typer.echo(f"  K={trial.k:<3d} mIoU {100 * trial.miou:6.2f} %  drop {trial.drop:6.2f} points  "
                       f"p50 {trial.p50_ms:7.2f} ms  {'meets' if trial.meets else 'misses'}")
        if result.replaced:
            typer.echo(f"  replaced {bundle}'s {result.artifact} model: K={result.applied_k} float layers "
                       f"(io {result.io_dtype.get('input')}/{result.io_dtype.get('output')})")
        else:
            typer.echo(f"  {result.artifact} unchanged (K=0: plain int8 already meets the bound)"
                       if result.applied_k == 0 else f"  {result.artifact} unchanged")
    typer.echo(f"wrote {target / REPORT_MD} (+ .json, .png)")


def _print_worst(report, count: int = 5) -> None:
    typer.echo(f"TFLite int8: {len(report.tflite)} quantized layers; worst {min(count, len(report.tflite))} "
               "by RMSE/scale:")
    for row in report.tflite[:count]:
        corr = f"{row.correlation:.4f}" if row.correlation is not None else "-"
        typer.echo(f"  {row.rmse_over_scale or 0:6.3f}  rmse {row.rmse:.4g}  corr {corr}  {row.op:<16} {row.name}")
