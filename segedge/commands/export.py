"""``segedge export RUN``: a trained model -> a deployable bundle (TFLite / ONNX, manifest, reference).

TensorFlow, tf2onnx and onnxruntime are imported inside the command body, so
``segedge export --help`` works on an edge install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segedge.commands import user_errors
from segedge.errors import OutputError
from segedge.export.options import CalibMethod, ExportOptions, IntIO

DEFAULT_FORMATS = "fp32,int8"
INT8_ADDS = ("fp32", "int8")  # --int8: the integer model plus its float baseline


def resolve_formats(formats: str | None, int8: bool) -> str:
    """The --formats value after applying the --int8 shorthand (default: fp32,int8)."""
    spec = formats if formats is not None else DEFAULT_FORMATS
    if int8 and "all" not in spec:
        names = [n.strip() for n in spec.split(",") if n.strip()]
        spec = ",".join(dict.fromkeys([*names, *INT8_ADDS]))
    return spec


def register(app: typer.Typer) -> None:
    app.command(name="export")(export)


@user_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run folder written by 'segedge train' (model.keras, config.json, "
                                              "split.json).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Bundle folder to write (default: RUN/bundle).")]
    = None,
    formats: Annotated[str | None, typer.Option(
        "--formats", help="Comma-separated targets: fp32, fp16, dynamic, int8 (TFLite), onnx, onnx-int8, or all "
                          f"(default: {DEFAULT_FORMATS}).")] = None,
    int8: Annotated[bool, typer.Option(
        "--int8", help="Add the full-integer TFLite model and, as its baseline, fp32.")] = False,
    calib: Annotated[int, typer.Option(help="Training-split images used to calibrate int8 models.")] = 200,
    eval_count: Annotated[int, typer.Option(
        "--eval", help="Held-out (test, else val) images in reference.npz and used to verify each artifact.")]
    = 100,
    int8_io: Annotated[IntIO, typer.Option(
        "--int8-io", help="Input/output type of the int8 TFLite model: uint8 (camera frames as is) or int8.")]
    = IntIO.uint8,
    calib_method: Annotated[CalibMethod, typer.Option(
        "--calib-method", help="ONNX int8 calibration method (TFLite int8 always uses min/max).")]
    = CalibMethod.minmax,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Dataset root, if it moved since training (default: config.json's data_root).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing bundle at --out.")] = False,
    debug_quant: Annotated[bool, typer.Option(
        "--debug-quant", help="Also write quant_report.{md,json,png}: per-layer int8 error (implies --int8; "
                              "the same as 'segedge quant-report').")] = False,
    int8_fallback: Annotated[str | None, typer.Option(
        "--int8-fallback", help="Re-quantize int8 with the K worst layers left in float; 'auto' picks the "
                                "smallest K within --max-miou-drop (implies --int8).")] = None,
    max_miou_drop: Annotated[float, typer.Option(
        "--max-miou-drop", help="Bound for --int8-fallback auto: mIoU drop vs Keras, in points.")] = 1.0,
    allow_large_fallback: Annotated[bool, typer.Option(
        "--allow-large-fallback", help="Accept a fallback model at or above half the fp32 size.")] = False,
) -> None:
    """Convert RUN/model.keras to TFLite/ONNX, verify every artifact, and write a bundle with a manifest."""
    from segedge.targets import parse_targets

    ExportOptions.build(calib, eval_count, int8_io.value, calib_method.value)  # fail before any slow import
    quant = debug_quant or int8_fallback is not None
    if quant:
        from segedge.quant.stage import QuantOptions

        quant_options = QuantOptions(k=int8_fallback, max_miou_drop=max_miou_drop,
                                     allow_large=allow_large_fallback).check()
    targets = parse_targets(resolve_formats(formats, int8 or quant))
    bundle = out if out is not None else run / "bundle"
    if bundle.exists() and not overwrite:
        raise OutputError(f"{bundle}: already exists; pass --overwrite to replace it")

    from segedge.export.bundle import export_bundle
    from segedge.export.verify import describe

    manifest = export_bundle(run, bundle, targets, calib=calib, eval_count=eval_count, int8_io=int8_io.value,
                             calib_method=calib_method.value, data_root=data, overwrite=overwrite)
    typer.echo(f"wrote {bundle} ({len(manifest.artifacts)} artifacts, manifest.json, reference.npz)")
    fp32 = next((a.bytes for a in manifest.artifacts.values() if a.file.endswith("fp32.tflite")), None)
    for name, info in manifest.artifacts.items():
        ratio = f"  ({info.bytes / fp32:.3f}x fp32)" if fp32 and info.file.endswith(".tflite") else ""
        typer.echo(describe(name, info.bytes, info.verify, info.precision) + ratio)
    if quant:
        from segedge.quant.show import print_outcome
        from segedge.quant.stage import quant_stage

        quant_options.onnx = {"onnx", "onnx-int8"} <= set(manifest.artifacts)
        outcome = quant_stage(run, bundle, quant_options, data_root=data)
        print_outcome(outcome, typer.echo)
        outcome.raise_if_failed()
