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


def register(app: typer.Typer) -> None:
    app.command(name="quant-report")(quant_report)


@user_errors
def quant_report(
    run: Annotated[Path, typer.Argument(help="Run folder the bundle was exported from (model.keras, config.json).")],
    bundle: Annotated[Path, typer.Option("--bundle", "-b", help="Bundle folder with an int8 TFLite artifact.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for quant_report.{md,json,png} (default: the bundle): new, empty, or one "
                            "an earlier quant-report wrote (with --overwrite).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace the quant report an earlier quant-report wrote in --out (only its own "
                            "files). In the bundle, its own quant_report.* are replaced without it.")] = False,
    samples: Annotated[int, typer.Option(
        help="Debug images (half held-out reference, half calibration) for the per-layer error.")] = 8,
    onnx: Annotated[bool, typer.Option(
        "--onnx/--no-onnx", help="Also tabulate the ONNX int8 QDQ model (needs onnx and onnx-int8).")] = True,
    int8_fallback: Annotated[str | None, typer.Option(
        "--int8-fallback", help="Leave the K worst layers in float and replace the bundle's int8 TFLite model "
                                "(and its ONNX int8 model, with --onnx); 'auto' searches for a small K within "
                                "--fallback-max-drop, per model. All models are replaced, or none (exit 7).")]
    = None,
    max_miou_drop: Annotated[float, typer.Option(
        "--fallback-max-drop", metavar="POINTS",
        help="Bound for --int8-fallback auto: mIoU drop vs the Keras model on the reference set, in points.")]
    = 1.0,
    allow_large_fallback: Annotated[bool, typer.Option(
        "--allow-large-fallback", help="Accept a fallback model at or above half the fp32 model's size "
                                       "(refused by default: it is hardly an int8 model any more).")] = False,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Dataset root, if it moved since training (default: config.json's data_root).")] = None,
    old_max_drop: Annotated[float | None, typer.Option("--max-miou-drop", hidden=True)] = None,
) -> None:
    """Per-layer int8 quantization error (TFLite QuantizationDebugger, ONNX qdq_loss_debug) and float fallback."""
    from segedge.util.optional import require_extra, require_runtimes

    require_extra("export")  # the TFLite debugger and the ONNX quantizer, before anything slow
    require_runtimes(["tflite"], extra="export")
    from segedge.quant.context import open_bundle
    from segedge.quant.show import print_outcome
    from segedge.quant.stage import QuantOptions, quant_stage

    max_miou_drop = renamed_value(max_miou_drop, old_max_drop, "--fallback-max-drop", "--max-miou-drop", 1.0)
    options = QuantOptions(samples, onnx, int8_fallback, max_miou_drop, allow_large_fallback).check()
    open_bundle(bundle)  # a missing bundle fails (exit 4) before TensorFlow is imported
    outcome = quant_stage(run, bundle, options, out=out, data_root=data, overwrite=overwrite)
    print_outcome(outcome, typer.echo)
    outcome.raise_if_failed()
