"""Which model file a bundle folder or a model path means, and its manifest entry.

A bundle holds several artifacts; ``segedge predict bundle/`` runs one of them
by a fixed preference (``DEFAULT_PREFERENCE``), and a model file named on its
own is matched to the manifest beside it, so a file from another export is
refused before it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from segedge.contract.manifest import MANIFEST_NAME, ArtifactInfo, Manifest, load_manifest
from segedge.contract.targets import TARGETS, Runtime, runtime_for_file
from segedge.util.errors import ConfigError, ModelError

# Which artifact a bundle folder runs when none is named. The rule: within a runtime (--runtime, else
# TFLite before ONNX), its int8 model first (the fastest on a Pi, and verified against Keras at export),
# then its fp32 model. Other precisions (fp16, dynamic) run only when no allowed runtime has either.
DEFAULT_PREFERENCE: tuple[tuple[str, str], ...] = (
    ("tflite", "int8"), ("tflite", "fp32"), ("onnx", "int8"), ("onnx", "fp32"),
)


def _available(bundle: Path, manifest: Manifest) -> dict[str, ArtifactInfo]:
    return {name: info for name, info in manifest.artifacts.items() if (bundle / info.file).is_file()}


def choose_artifact(bundle: Path, manifest: Manifest, artifact: str | None = None,
                    runtime: str | None = None) -> tuple[str, ArtifactInfo]:
    """The manifest entry to run: the one named, else the preferred one present on disk."""
    if artifact is not None:
        if artifact not in manifest.artifacts:
            listed = ", ".join(manifest.artifacts) or "none"
            raise ConfigError(f"{bundle / MANIFEST_NAME}: no artifact named {artifact!r}; this bundle has: {listed}")
        return artifact, manifest.artifacts[artifact]
    present = _available(bundle, manifest)
    if runtime:
        present = {k: v for k, v in present.items() if v.runtime == runtime}

    def kind(name: str, info: ArtifactInfo) -> tuple[str, str]:
        # The target's kind by name first: a re-quantized int8 model stays the int8 choice whatever
        # precision its manifest entry records.
        target = TARGETS.get(name)
        return (target.runtime.value, target.precision.value) if target else (info.runtime, info.precision)

    for wanted in DEFAULT_PREFERENCE:
        for name, info in present.items():
            if kind(name, info) == wanted:
                return name, info
    if present:
        return next(iter(present.items()))
    which = f" for runtime {runtime}" if runtime else ""
    listed = ", ".join(info.file for info in manifest.artifacts.values()) or "none listed"
    raise ModelError(f"{bundle}: no model file{which} found beside the manifest (manifest lists: {listed})")


def resolve(path: str | os.PathLike[str], artifact: str | None = None,
            runtime: str | None = None) -> tuple[Path, Manifest | None, str | None, ArtifactInfo | None]:
    """A bundle folder or a model file -> (model path, manifest, artifact name, entry).

    A model file with no manifest.json beside it gives (path, None, None, None): ``load``
    then reads everything from the metadata embedded in the file.
    """
    path = Path(path)
    if runtime is not None and runtime not in {r.value for r in Runtime}:
        raise ConfigError(f"--runtime must be tflite or onnx, got {runtime!r}")
    if path.is_dir():
        manifest = load_manifest(path)
        name, info = choose_artifact(path, manifest, artifact, runtime)
        return path / info.file, manifest, name, info
    if not path.exists():
        raise ModelError(f"{path}: no such bundle folder or model file")
    try:
        runtime_for_file(path.name)  # a clear error for a file that is not .tflite/.onnx
    except ConfigError as exc:  # a wrong model path is a model error (exit 4), as in bench and export
        raise ModelError(f"{path}: neither a bundle folder nor a .tflite/.onnx model file") from exc
    if not (path.parent / MANIFEST_NAME).is_file():
        return path, None, None, None
    manifest = load_manifest(path.parent)
    matches = [(name, info) for name, info in manifest.artifacts.items() if info.file == path.name]
    if not matches:
        raise ModelError(f"{path}: not listed in {path.parent / MANIFEST_NAME}; it is not from this export")
    name, info = matches[0]
    if artifact is not None and artifact != name:
        raise ConfigError(f"{path} is the artifact {name!r}, but --format {artifact!r} was given; pass one of them")
    return path, manifest, name, info
