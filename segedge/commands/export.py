"""``segedge export RUN|MODEL.keras``: a trained model -> a deployable bundle (TFLite / ONNX, manifest, reference).

A ``.keras`` file segedge did not train is described on the command line
(``--classes``, ``--scaling``, ``--mean``/``--std``, ``--resize``, ``--image-size`` or a
``--preprocess`` JSON file) and calibrated / verified on ``--data`` (``segedge.export.byo``).

TensorFlow, tf2onnx and onnxruntime are imported inside the command body, so
``segedge export --help`` works on an edge install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segedge.commands import user_errors
from segedge.commands._vocab import renamed_list, renamed_value
from segedge.contract.preprocess import ResizeMode, Scaling
from segedge.contract.targets import TARGETS, parse_targets, split_names
from segedge.contract.upsample import DEFAULT_UPSAMPLE, check_upsample
from segedge.export.options import CalibMethod, ExportOptions, IntIO
from segedge.util import outputs
from segedge.util.errors import ConfigError, ModelError, user_path

DEFAULT_FORMATS = ("fp32", "int8")
# --int8: the full-integer model of BOTH runtimes, plus the float model of each that it is verified against.
INT8_FORMATS = ("fp32", "int8", "onnx", "onnx-int8")


def resolve_formats(formats: list[str] | None, int8: bool) -> list[str]:
    """The --format names after applying the --int8 shorthand (default: fp32, int8)."""
    names = split_names(formats) or list(DEFAULT_FORMATS)
    if int8 and "all" not in names:
        names = list(dict.fromkeys([*names, *INT8_FORMATS]))
    return names


PANEL_BYO = "Your own Keras model (a .keras file instead of a run folder)"


def _declared_classes(data: Path | None):
    """The classes a --data dataset declares in its classes.json (None without one, or without --data)."""
    from segedge.export.byo_data import _open_data, declared_classes
    from segedge.util.errors import DataError

    if data is None:
        return None
    try:
        return declared_classes(_open_data(data))
    except DataError:
        return None  # export reports the fault, naming the file, when it opens --data


def _byo_request(model: Path, values: dict, resize: ResizeMode | None, data: Path | None = None):
    """The BYO description, or None for a run folder (then BYO-only options are refused by name)."""
    from segedge.export.byo_request import ByoRequest, describe_request

    given = [f"--{name.replace('_', '-')}" for name, value in values.items() if value is not None]
    if not (model.suffix.lower() == ".keras" and model.is_file()):
        if given:
            raise ConfigError(f"{', '.join(given)}: for a .keras model only; {model} is a run folder, whose classes "
                              "and pre-processing come from its config.json")
        return None
    if not given and resize is None and (model.parent / "config.json").is_file():
        raise ModelError(f"{model}: is the model of a run folder; export the run: 'segedge export {model.parent}' "
                         "(it holds config.json), or describe this file with --classes, --scaling and --data")
    request = ByoRequest(**{k: v for k, v in values.items() if k != "preprocess"},
                         resize=None if resize is None else resize.value, preprocess_file=values["preprocess"])
    describe_request(request, _declared_classes(data))  # classes, scaling, mean/std before any slow import
    return request


def register(app: typer.Typer) -> None:
    app.command(name="export")(export)


def _require_export_extra(targets) -> None:
    """Converters, and the runtimes that verify each artifact, before any slow import (one line, exit 6)."""
    from segedge.util.optional import require_extra, require_runtimes

    require_extra("export")
    require_runtimes((t.runtime.value for t in targets), extra="export")


@user_errors
def export(
    run: Annotated[Path, typer.Argument(
        metavar="RUN|MODEL.keras",
        help="Run folder written by 'segedge train' (model.keras, config.json, split.json), or a .keras "
             "segmentation model segedge did not train (then --data, --classes and --scaling are needed).")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Bundle folder to write: new or empty (default: RUN/bundle; MODEL_bundle next to a "
                            ".keras model).")] = None,
    formats: Annotated[list[str] | None, typer.Option(
        "--format", metavar="NAME", show_default=False,
        help=f"Target to write: {', '.join(TARGETS)} or all. Repeat it or give a comma list "
             f"(--format fp32,fp16). Default: {','.join(DEFAULT_FORMATS)}.")] = None,
    int8: Annotated[bool, typer.Option(
        "--int8", help=f"Add the int8 models of both runtimes and the float models they are verified against: "
                       f"{', '.join(INT8_FORMATS)}.")] = False,
    calib: Annotated[int, typer.Option(
        "--calib-images", metavar="N", help="Training-split images used to calibrate int8 models.")] = 200,
    eval_count: Annotated[int, typer.Option(
        "--eval-images", metavar="N",
        help="Held-out (test, else val) images in reference.npz and used to verify each artifact.")] = 100,
    int8_io: Annotated[IntIO, typer.Option(
        "--int8-io", help="Input type of the int8 TFLite model: uint8 (camera frames as is) or int8 "
                          "(its logits are int8 either way).")]
    = IntIO.uint8,
    calib_method: Annotated[CalibMethod, typer.Option(
        "--calib-method", help="ONNX int8 calibration method (TFLite int8 always uses min/max).")]
    = CalibMethod.minmax,
    upsample: Annotated[str, typer.Option(
        "--upsample", metavar="logits|mask",
        help="How masks reach the image's size, recorded in the manifest and used by predict, bench and the "
             "Keras reference: bilinear on the logits then argmax, or nearest on the model-size mask.")]
    = DEFAULT_UPSAMPLE,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Dataset root, if it moved since training (default: config.json's data_root). For a "
                       ".keras model: required; a VOC folder (train split calibrates, val/test is the reference "
                       "set) or a folder of images (no masks: mIoU is n/a, agreement with Keras is checked).")]
    = None,
    resize: Annotated[ResizeMode | None, typer.Option(
        help="stretch, or letterbox (keep the aspect ratio, pad with the pixel that scales to 0). Default: the "
             "run's (train --resize), stretch for a .keras model.")] = None,
    classes: Annotated[str | None, typer.Option(
        metavar="a,b,c|FILE.json", rich_help_panel=PANEL_BYO,
        help="Class names in output-channel order, or a JSON file: a list of names, or an object with "
             "\"classes\" and an optional \"palette\". Must match the model's output channels.")] = None,
    palette: Annotated[str | None, typer.Option(
        metavar="FILE.json", rich_help_panel=PANEL_BYO,
        help="Colours per class: a JSON list of R,G,B triples 0..255 (default: the VOC palette).")] = None,
    image_size: Annotated[str | None, typer.Option(
        metavar="N|HxW", rich_help_panel=PANEL_BYO,
        help="Input height x width; read from the model when its input shape is static (a different value is "
             "an error), required when it is dynamic.")] = None,
    scaling: Annotated[Scaling | None, typer.Option(
        rich_help_panel=PANEL_BYO,
        help="What the model expects from pixels p (0..255): unit p/255, mobilenet p/127.5-1, or meanstd "
             "(p-mean)/std per channel with --mean/--std.")] = None,
    mean: Annotated[str | None, typer.Option(
        metavar="R,G,B", rich_help_panel=PANEL_BYO,
        help="meanstd: per-channel mean in PIXEL units 0..255 (torchvision's 0..1 values x 255; ImageNet: "
             "123.675,116.28,103.53).")] = None,
    std: Annotated[str | None, typer.Option(
        metavar="R,G,B", rich_help_panel=PANEL_BYO,
        help="meanstd: per-channel std in PIXEL units 0..255 (ImageNet: 58.395,57.12,57.375).")] = None,
    preprocess: Annotated[Path | None, typer.Option(
        "--preprocess", metavar="FILE.json", rich_help_panel=PANEL_BYO,
        help="The same as a JSON object: height, width, scaling, mean, std, resize, classes, palette (the "
             "options above override it).")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace the bundle segedge wrote at --out (never a folder holding other files).")] = False,
    debug_quant: Annotated[bool, typer.Option(
        "--debug-quant", help="Also write quant_report.{md,json,png}: per-layer int8 error (implies --int8; "
                              "the same as 'segedge quant-report').")] = False,
    int8_fallback: Annotated[str | None, typer.Option(
        "--int8-fallback", help="Re-quantize int8 with the K worst layers left in float; 'auto' picks the "
                                "smallest K within --fallback-max-drop (implies --int8).")] = None,
    max_miou_drop: Annotated[float, typer.Option(
        "--fallback-max-drop", metavar="POINTS",
        help="Bound for --int8-fallback auto: mIoU drop vs Keras, in points.")] = 1.0,
    old_formats: Annotated[list[str] | None, typer.Option("--formats", hidden=True)] = None,
    old_calib: Annotated[int | None, typer.Option("--calib", hidden=True)] = None,
    old_eval: Annotated[int | None, typer.Option("--eval", hidden=True)] = None,
    old_max_drop: Annotated[float | None, typer.Option("--max-miou-drop", hidden=True)] = None,
    allow_large_fallback: Annotated[bool, typer.Option(
        "--allow-large-fallback", help="Accept a fallback model at or above half the fp32 size.")] = False,
) -> None:
    """Convert RUN/model.keras (or your own MODEL.keras) to TFLite/ONNX, verify every artifact, and write a bundle
    with a manifest."""
    # messages show the paths as typed, without detours: flow/../own/x is own/x
    run, out, data = (None if p is None else user_path(p) for p in (run, out, data))
    formats = renamed_list(formats, old_formats, "--format", "--formats")
    calib = renamed_value(calib, old_calib, "--calib-images", "--calib", 200)
    eval_count = renamed_value(eval_count, old_eval, "--eval-images", "--eval", 100)
    max_miou_drop = renamed_value(max_miou_drop, old_max_drop, "--fallback-max-drop", "--max-miou-drop", 1.0)
    ExportOptions.build(calib, eval_count, int8_io.value, calib_method.value)  # fail before any slow import
    check_upsample(upsample)
    quant = debug_quant or int8_fallback is not None
    byo = _byo_request(run, {"classes": classes, "palette": palette, "image_size": image_size,
                             "scaling": None if scaling is None else scaling.value, "mean": mean, "std": std,
                             "preprocess": preprocess}, resize, data)
    if byo is not None and quant:
        raise ConfigError("--debug-quant and --int8-fallback work on a run folder; not yet on a .keras model")
    if quant:
        from segedge.quant.stage import QuantOptions

        quant_options = QuantOptions(k=int8_fallback, max_miou_drop=max_miou_drop,
                                     allow_large=allow_large_fallback).check()
    targets = parse_targets(resolve_formats(formats, int8 or quant))
    _require_export_extra(targets)
    bundle = out if out is not None else (run.with_name(run.stem + "_bundle") if byo else run / "bundle")
    outputs.claim(bundle, "bundle", overwrite)  # refuse before any slow import; checked again at the swap

    from segedge.export.bundle import export_bundle
    from segedge.export.verify import describe

    manifest = export_bundle(run, bundle, targets, calib=calib, eval_count=eval_count, int8_io=int8_io.value,
                             calib_method=calib_method.value, data_root=data, overwrite=overwrite,
                             upsample=upsample, byo=byo, resize=None if resize is None else resize.value)
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
