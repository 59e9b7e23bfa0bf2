"""``export_bundle``: RUN folder (or a ``.keras`` model + ``ByoRequest``) -> BUNDLE folder.

The bundle holds the artifacts, manifest.json and reference.npz.

Everything is assembled in ``outputs.build`` (``fileio.atomic_dir``) and swapped
in only after every artifact has been written, read back and verified, so a
failed or killed export leaves the previous bundle as it was and no half bundle.
``out`` must be new, an empty folder or (with ``overwrite``) a bundle segedge
wrote (``segedge.util.outputs.claim``), checked before conversion and again at the swap.
Converter scratch (SavedModels, pre-processed ONNX) lives in ``fileio.scratch_dir`` inside that build
folder: removed on the way out (Ctrl-C and SIGTERM included), and with the build folder by the next
export of the same bundle when this one was killed outright, so a stopped export never leaves a
SavedModel of tens of MB in the system temp folder.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segedge.contract import metadata
from segedge.contract.labels import VOID
from segedge.contract.manifest import MANIFEST_NAME, REFERENCE_NAME, ArtifactInfo, Manifest
from segedge.contract.preprocess import InputContract, PreprocessSpec
from segedge.contract.targets import TARGETS, Precision, Runtime, Target
from segedge.contract.upsample import DEFAULT_UPSAMPLE, check_upsample
from segedge.export.byo import ByoModel, ByoRequest, check_byo_output, dataset_has_masks, fixed_size_model, open_byo
from segedge.export.calibration import CalibrationSource, load_calibration
from segedge.export.graph import ExportModel, RewritePlan, prepare_export_model, rewrite_plan
from segedge.export.options import ExportOptions
from segedge.export.reference import Reference, build_reference
from segedge.export.run import RunFolder, check_model_matches, load_keras_model, open_run
from segedge.export.tflite import Converted, TFLiteSource, convert_tflite
from segedge.export.verify import check_fp32, read_io, verify_artifact
from segedge.util import fileio, outputs
from segedge.util.errors import ConfigError, ExportError, SegedgeError
from segedge.util.progress import stderr


def log(message: str) -> None:
    """Progress lines on stderr (stdout stays for the command's summary)."""
    stderr.print(message, highlight=False, soft_wrap=True)


def quiet_tensorflow() -> None:
    """Keep TF's C++ info/warning chatter off the terminal unless the user set a level."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def versions() -> dict[str, str]:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    import segedge

    found = {"segedge": segedge.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
             "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    try:
        from importlib.metadata import version

        found["ai-edge-litert"] = version("ai-edge-litert")
    except Exception:  # not installed: the TFLite artifacts were verified with tflite-runtime
        pass
    return found


def _convert(target: Target, export: ExportModel, tflite: TFLiteSource, scratch: Path,
             calibration: CalibrationSource | None, options: ExportOptions, onnx_fp32: Path | None) -> Converted:
    """One target's bytes; ONNX int8 reuses the fp32 ONNX artifact when it is the same graph, else makes one."""
    if target.runtime is Runtime.tflite:
        return convert_tflite(tflite, target.precision, calibration, options.int8_io)
    from segedge.export.onnx import convert_onnx, quantize_onnx

    if target.precision is Precision.fp32:
        return convert_onnx(export)
    if onnx_fp32 is None:
        onnx_fp32 = scratch / "onnx_fp32_for_int8.onnx"
        onnx_fp32.write_bytes(convert_onnx(export).data)
    return quantize_onnx(onnx_fp32, scratch, calibration, export.input_name, options.calib_method)


def labels_of(run: RunFolder | ByoModel) -> tuple[list[str], list[list[int]]]:
    """Class names and palette as the manifest and metadata hold them: the run's dataset declared them (VOC's 21
    without a classes.json), or a BYO model's user stated them."""
    return list(run.classes.names), [list(rgb) for rgb in run.classes.palette]


def export_spec(run: RunFolder | ByoModel) -> PreprocessSpec:
    """The bundle's pre-processing: the run's, with pixels 0..255 in and the scaling inside every artifact."""
    return dataclasses.replace(run.spec, input=InputContract.pixels.value)


def model_of(run: RunFolder | ByoModel) -> dict[str, Any] | None:
    """The model's size (encoder, width multiplier, decoder widths) for a run segedge trained; None for a brought
    model, whose architecture segedge does not know. Recorded so a bundle says which size it is."""
    if isinstance(run, ByoModel):
        return None
    from segedge.train.widths import model_description

    return model_description(run.config)


def artifact_document(run: RunFolder | ByoModel, target: Target, upsample: str = DEFAULT_UPSAMPLE) -> dict[str, Any]:
    """What ``segedge.contract.metadata`` embeds in one artifact: labels, palette, void, outputs,
    pre- and post-processing, and the model's size."""
    import segedge

    classes, palette = labels_of(run)
    return metadata.build(target.name, target.runtime.value, target.precision.value, classes=classes,
                          palette=palette, void=VOID,
                          void_handling=run.void_handling, model_outputs=run.num_outputs,
                          preprocess=export_spec(run).to_dict(), postprocess={"upsample": upsample},
                          segedge_version=segedge.__version__, model=model_of(run))


def _artifact(folder: Path, target: Target, converted: Converted, export: ExportModel,
              elapsed: float, document: dict[str, Any]) -> ArtifactInfo:
    path = folder / target.filename
    # Embedded before the bytes are written and hashed: the manifest's sha256 covers the metadata.
    fileio.write_bytes(path, metadata.embed(converted.data, target.runtime.value, document))
    size = path.stat().st_size
    shown = f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
    log(f"{target.name}: {shown} in {elapsed:.1f} s ({converted.converter})")
    tensor_in, tensor_out = read_io(path)
    if tensor_in.shape[0] != export.batch:
        raise ExportError(
            f"export {target.name} failed: the written model's batch dimension is {tensor_in.shape[0]}, "
            f"not the fixed {export.batch} it was built with (a dynamic batch falls out of XNNPACK)"
        )
    details = {**converted.details, **export.details(), "seconds": round(elapsed, 2)}
    return ArtifactInfo(file=target.filename, runtime=target.runtime.value, precision=target.precision.value,
                        sha256=fileio.sha256_file(path), bytes=size, input=tensor_in, output=tensor_out,
                        converter=converted.converter, details=details)


def _write_artifacts(folder: Path, targets: Sequence[Target], graphs: dict[RewritePlan, ExportModel],
                     calibration: CalibrationSource | None, options: ExportOptions,
                     run: RunFolder | ByoModel, upsample: str) -> dict[str, ArtifactInfo]:
    """``graphs`` maps each target's ``rewrite_plan`` to the graph converted for it."""
    artifacts: dict[str, ArtifactInfo] = {}
    with fileio.scratch_dir(folder) as scratch:  # inside the build folder: a killed export's goes with it
        onnx_fp32: dict[RewritePlan, Path] = {}  # fp32 ONNX artifacts written, by graph
        sources: dict[RewritePlan, TFLiteSource] = {}
        for target in targets:
            plan = rewrite_plan(target)
            export = graphs[plan]
            if plan not in sources:
                graph_dir = scratch / f"graph-{plan.tag}"
                graph_dir.mkdir()
                sources[plan] = TFLiteSource(export, graph_dir)
            tflite = sources[plan]
            start = time.perf_counter()
            try:
                converted = _convert(target, export, tflite, scratch, calibration, options, onnx_fp32.get(plan))
            except SegedgeError:
                raise
            except Exception as exc:
                raise ExportError(f"export {target.name} failed: {type(exc).__name__}: {exc}") from exc
            artifacts[target.name] = _artifact(folder, target, converted, export, time.perf_counter() - start,
                                               artifact_document(run, target, upsample))
            if target.runtime is Runtime.onnx and target.precision is Precision.fp32:
                onnx_fp32[plan] = folder / target.filename
    return artifacts


def _verify(folder: Path, targets: Sequence[Target], artifacts: dict[str, ArtifactInfo], reference: Reference,
            run: RunFolder | ByoModel) -> None:
    """Fill each artifact's ``verify``; the command prints them (``verify.describe``) on stdout."""
    for target in targets:
        info = artifacts[target.name]
        try:
            info.verify = verify_artifact(folder / info.file, target, reference, export_spec(run), len(run.classes))
        except SegedgeError:
            raise
        except Exception as exc:
            raise ExportError(f"export {target.name} failed: the written file does not run "
                              f"({type(exc).__name__}: {exc})") from exc
        check_fp32(target, info.verify)


def _source_model(run: RunFolder | ByoModel) -> dict[str, Any]:
    sha256 = fileio.sha256_file(run.model_path)
    if isinstance(run, ByoModel):
        return run.source_model(sha256)
    return {"file": run.model_path.name, "run": str(run.path.resolve()), "sha256": sha256,
            "bytes": run.model_path.stat().st_size, "preset": run.config.get("preset"),
            "encoder_weights": run.config.get("encoder_weights"), **(model_of(run) or {}),
            # a pairs dataset without split files is split by this share: bench --data picks the same val images
            "val_fraction": run.config.get("val_fraction")}


def _manifest(run: RunFolder | ByoModel, reference: Reference, calibration: CalibrationSource | None,
              options: ExportOptions, artifacts: dict[str, ArtifactInfo], reference_path: Path) -> Manifest:
    calib: dict[str, Any] = (calibration.summary() if calibration is not None
                             else {"count": 0, "split": "train", "ids": []})
    if calibration is not None:
        calib.update({"tflite_method": "minmax", "onnx_method": options.calib_method.value,
                      "int8_io": options.int8_io.value, "requested": options.calib})
    classes, palette = labels_of(run)
    return Manifest(
        classes=classes,
        palette=palette,
        void=VOID,
        void_handling=run.void_handling,
        model_outputs=run.num_outputs,
        preprocess=export_spec(run),
        source_model=_source_model(run),
        calibration=calib,
        reference=reference.summary(REFERENCE_NAME, reference_path),
        versions=versions(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        artifacts=artifacts,
        postprocess={"upsample": reference.upsample,
                     "formula": "mask = argmax(upsample(logits cropped to the image, to its size))"},
    )


def _warn_scaling(run: RunFolder | ByoModel) -> None:
    weights = str(run.config.get("encoder_weights") or "none")
    if weights != "none" and run.spec.scaling != "mobilenet":
        log(f"warning: the encoder started from {weights} (MobileNet ImageNet weights expect [-1, 1] input) "
            f"but the run trained with {run.spec.scaling!r} scaling; the bundle keeps the training scaling")


def export_bundle(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], targets: Sequence[Target], *,
                  calib: int = 200, eval_count: int = 100, int8_io: str = "uint8", calib_method: str = "minmax",
                  data_root: str | os.PathLike[str] | None = None, overwrite: bool = True,
                  upsample: str = DEFAULT_UPSAMPLE, byo: ByoRequest | None = None,
                  resize: str | None = None) -> Manifest:
    """Convert, verify and write a bundle; returns its manifest (also saved as ``out/manifest.json``).

    ``byo``: ``run_dir`` is a ``.keras`` model segedge did not train, described by the request
    (classes, pre-processing); ``data_root`` is then required (``segedge.export.byo``).
    ``resize`` (stretch / letterbox) replaces the run's for the bundle (its reference set too).
    """
    if not targets:
        raise ConfigError("no export format selected")
    options = ExportOptions.build(calib, eval_count, int8_io, calib_method)
    check_upsample(upsample)
    order = list(TARGETS)
    targets = sorted(set(targets), key=lambda t: order.index(t.name))  # onnx before onnx-int8: reused
    if byo is None:  # a run's held-out images have masks: a missing one is an error naming it
        run, model, target = _open_run_model(run_dir, out, overwrite, data_root)
        has_masks = True
        if resize is not None and resize != run.spec.resize:
            log(f"note: the run trained with --resize {run.spec.resize}; the bundle uses {resize}")
            run = dataclasses.replace(run, spec=dataclasses.replace(run.spec, resize=resize))
    else:
        if resize is not None:
            byo = dataclasses.replace(byo, resize=resize)
        run, model, target = _open_byo_model(Path(run_dir), out, overwrite, byo, data_root, options.eval_count)
    dataset = run.dataset(data_root)
    if byo is not None:
        has_masks = dataset_has_masks(dataset, run.split.test or run.split.val)
    spec = export_spec(run)
    graphs = {plan: prepare_export_model(model, plan=plan, scaling=spec) for plan in {rewrite_plan(t) for t in targets}}
    classes, palette = labels_of(run)
    reference = build_reference(model, dataset, run.split, run.spec, options.eval_count, classes=classes,
                                palette=palette, upsample=upsample, void=VOID,
                                has_masks=has_masks)
    calibration = None
    if any(t.needs_calibration for t in targets):
        calibration = load_calibration(dataset, run.split.train, options.calib, spec, exclude=reference.ids)
    with outputs.build(target) as folder:
        artifacts = _write_artifacts(folder, targets, graphs, calibration, options, run, upsample)
        reference.save(folder / REFERENCE_NAME)
        _verify(folder, targets, artifacts, reference, run)
        manifest = _manifest(run, reference, calibration, options, artifacts, folder / REFERENCE_NAME)
        manifest.save(folder / MANIFEST_NAME)
    return manifest


def _open_run_model(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], overwrite: bool,
                    data_root: str | os.PathLike[str] | None):
    run = open_run(run_dir)
    run.dataset(data_root)  # a moved dataset fails here, before the bundle folder is claimed
    target = outputs.claim(out, "bundle", overwrite)  # before minutes of conversion; again at the swap
    quiet_tensorflow()
    _warn_scaling(run)
    model = load_keras_model(run.model_path)
    check_model_matches(model, run)
    return run, model, target


def _open_byo_model(path: Path, out: str | os.PathLike[str], overwrite: bool, request: ByoRequest,
                    data_root: str | os.PathLike[str] | None, eval_count: int):
    if data_root is None:
        raise ConfigError(f"{path}: a .keras model needs --data DIR (a dataset folder: calibration and the "
                          "reference set come from it)")
    target = outputs.claim(out, "bundle", overwrite)
    quiet_tensorflow()
    model = load_keras_model(path)
    run = open_byo(path, model, Path(data_root), request, eval_count)
    model = fixed_size_model(model, (run.spec.height, run.spec.width))
    check_byo_output(model, path, (run.spec.height, run.spec.width), list(run.classes.names))
    return run, model, target
