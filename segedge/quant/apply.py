"""Put the picked fallback models into the bundle: all or nothing, re-measured as written.

Every file touched (the int8 artifacts and ``manifest.json``) is read into
memory first; if anything fails (a write, the re-measurement, the bound
check on the model as written) every one of them is written back, byte for
byte. The model as written is re-run through the edge runtime
(``verify_artifact``, the same check export makes) and must be the bytes the
search measured (sha256) and, in ``auto`` mode, still meet the bound.
A model with float layers is recorded as precision ``mixed``, with its
size ratio to the fp32 model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from segedge.contract.manifest import MANIFEST_NAME, ArtifactInfo
from segedge.contract.targets import TARGETS, Precision
from segedge.quant.context import ONNX_INT8, QuantContext
from segedge.quant.fallback import FallbackResult, fallback_layers
from segedge.quant.requant_onnx import ONNX_REQUANTIZER
from segedge.quant.requant_tflite import REQUANTIZER
from segedge.quant.search import AUTO
from segedge.util import fileio
from segedge.util.errors import ParityError

MIXED = Precision.mixed.value


def needs_writing(ctx: QuantContext, result: FallbackResult) -> bool:
    """K > 0 changes the model; K = 0 too when the bundle holds an earlier fallback (back to plain int8)."""
    if result.failed or result.applied_k is None or result.model_path is None:
        return False
    return result.applied_k > 0 or ctx.manifest.artifacts[result.artifact].precision == MIXED


def _record(info: ArtifactInfo, result: FallbackResult, k: int) -> None:
    """The manifest entry of the written fallback model (io and sha256 are filled in by the caller)."""
    trial = result.trial(k)
    onnx = result.artifact == ONNX_INT8
    info.precision = MIXED if result.float_layers else TARGETS[result.artifact].precision.value
    info.converter = ONNX_REQUANTIZER if onnx else REQUANTIZER
    info.details.update({
        "fallback_k": k, "denylisted_layers": list(fallback_layers(result, k)),
        "float_layers": list(result.float_layers), "fallback_ranking": result.ranking,
        "fallback_mode": result.mode, "max_miou_drop": result.max_miou_drop,
        "size_ratio_fp32": trial.size_ratio, "size_basis": result.size_basis,
        "fallback_drop": trial.drop, "fallback_drop_noise": trial.drop_noise,
        "fallback_p50_ms": trial.p50_ms,
    })
    if onnx:
        info.details["nodes_to_exclude"] = list(fallback_layers(result, k))
    elif result.float_layers:
        info.details["ops"] = "TFLITE_BUILTINS_INT8 + float builtins (float fallback)"


def _write_one(ctx: QuantContext, result: FallbackResult) -> None:
    from segedge.export.verify import read_io, verify_artifact

    k = int(result.applied_k)  # needs_writing checked it
    info = ctx.manifest.artifacts[result.artifact]
    path = ctx.bundle / info.file
    fileio.write_bytes(path, result.model_path.read_bytes())
    digest = fileio.sha256_file(path)
    if digest != result.trial(k).sha256:
        raise ParityError(f"{path}: the written model is not the one the search measured (sha256 differs)")
    verify = verify_artifact(path, TARGETS[result.artifact], ctx.reference, ctx.manifest.preprocess,
                             ctx.manifest.num_classes)
    drop = 100.0 * (result.keras_miou - verify["miou"])
    result.verified = {"miou": verify["miou"], "drop": drop, "agreement": verify["agreement"], "sha256": digest}
    if result.mode == AUTO and drop > result.max_miou_drop + 1e-9:
        raise ParityError(f"{path}: re-measured as written, K={k} drops {drop:.2f} mIoU points "
                          f"(> --fallback-max-drop {result.max_miou_drop:g}; the search measured "
                          f"{result.trial(k).drop:.2f}); the bundle was restored")
    tensor_in, tensor_out = read_io(path)
    info.input, info.output, info.sha256, info.bytes, info.verify = tensor_in, tensor_out, digest, \
        path.stat().st_size, verify
    _record(info, result, k)
    info.details["io_dtype"] = {"input": tensor_in.dtype, "output": tensor_out.dtype}
    if result.artifact != ONNX_INT8 and tensor_in.dtype in ("uint8", "int8"):
        info.details["int8_io"] = tensor_in.dtype


def apply_results(ctx: QuantContext, results: Sequence[FallbackResult]) -> list[FallbackResult]:
    """Write every result that changes its artifact, or none of them; returns those written.

    Raises ParityError (after restoring every file byte for byte) when a model
    as written does not re-measure within the bound. Call only when no result failed.
    """
    todo = [r for r in results if needs_writing(ctx, r)]
    if not todo:
        return []
    files = [ctx.bundle / MANIFEST_NAME, *(ctx.bundle / ctx.manifest.artifacts[r.artifact].file for r in todo)]
    backup: dict[Path, bytes] = {path: path.read_bytes() for path in files}
    try:
        for result in todo:
            _write_one(ctx, result)
        ctx.manifest.save(ctx.bundle / MANIFEST_NAME)
    except BaseException:
        for path, data in backup.items():
            fileio.write_bytes(path, data)
        raise
    for result in todo:
        result.replaced = True
    return todo
