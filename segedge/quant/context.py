"""A run folder and its bundle, checked to belong together: what the report and the fallback both need.

A bundle that is missing, malformed, lacks an int8 artifact or was exported
from another model is a ModelError (exit 4), as in predict and bench.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segedge.contract.manifest import MANIFEST_NAME, REFERENCE_NAME, Manifest, load_manifest
from segedge.contract.preprocess import scale_pixels
from segedge.export.calibration import CalibrationSource, load_calibration
from segedge.export.reference import Reference
from segedge.export.run import RunFolder, open_run
from segedge.util import fileio
from segedge.util.errors import ExportError, ModelError

TFLITE_INT8 = "int8"
TFLITE_FP32 = "fp32"
ONNX_FP32, ONNX_INT8 = "onnx", "onnx-int8"


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

    def artifact_path(self, name: str) -> Path:
        return self.bundle / self.manifest.artifacts[name].file

    def debug_batches(self, samples: int) -> tuple[list[str], list[np.ndarray]]:
        """``samples`` float32 (1,H,W,3) batches: held-out reference images first half, calibration the rest."""
        from_reference = min(len(self.reference), (samples + 1) // 2)
        from_calib = min(len(self.calibration), samples - from_reference)
        from_reference = min(len(self.reference), samples - from_calib)
        ids = [f"reference:{i}" for i in self.reference.ids[:from_reference]]
        ids += [f"calibration:{i}" for i in self.calibration.ids[:from_calib]]
        pixels = np.concatenate([self.reference.inputs[:from_reference], self.calibration.pixels[:from_calib]])
        spec = self.manifest.preprocess  # a pixel-input bundle's graph takes the pixels 0..255
        if spec.pixels_in:
            return ids, [p[None].astype(np.float32) for p in pixels]
        return ids, [scale_pixels(p[None], spec).astype(np.float32) for p in pixels]


def open_bundle(bundle_dir: str | os.PathLike[str]) -> tuple[Path, Manifest]:
    """The bundle folder and its manifest; ModelError (exit 4) when it is not a bundle."""
    bundle = Path(bundle_dir).expanduser()
    if not bundle.is_dir():
        raise ModelError(f"{bundle}: bundle folder not found; export one with 'segedge export RUN --out {bundle}'")
    if not (bundle / MANIFEST_NAME).is_file():
        raise ModelError(f"{bundle}: not a bundle (no {MANIFEST_NAME}); export one with 'segedge export RUN'")
    return bundle, load_manifest(bundle)


def load_context(run_dir: str | os.PathLike[str], bundle_dir: str | os.PathLike[str],
                 data_root: str | os.PathLike[str] | None = None) -> QuantContext:
    """Open RUN and BUNDLE, refuse a pair that does not belong together, reload the calibration images."""
    run = open_run(run_dir)
    bundle, manifest = open_bundle(bundle_dir)
    recorded = manifest.source_model.get("sha256")
    if recorded and recorded != fileio.sha256_file(run.model_path):
        raise ModelError(f"{bundle}: was exported from a different model than {run.model_path} "
                         "(source sha256 differs); pass the run the bundle was exported from")
    if TFLITE_INT8 not in manifest.artifacts and ONNX_INT8 not in manifest.artifacts:
        raise ModelError(f"{bundle}: has no int8 artifact; export with --format int8 (or onnx-int8) first")
    ids = [str(i) for i in manifest.calibration.get("ids") or []]
    if not ids:
        raise ModelError(f"{bundle}: manifest records no calibration images; re-export with int8 targets")
    reference = Reference.load(bundle / REFERENCE_NAME)
    calibration = load_calibration(run.dataset(data_root), ids, len(ids), manifest.preprocess)
    if len(calibration) != len(ids):
        raise ExportError(f"{bundle}: only {len(calibration)} of the {len(ids)} calibration images were found")
    return QuantContext(run, bundle, manifest, reference, calibration)
