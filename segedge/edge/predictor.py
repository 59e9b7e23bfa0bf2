"""``load(bundle_or_model) -> Segmenter``: the whole edge inference path in one object.

The bundle's manifest is the only source of pre-processing, labels and void
handling; the model file is checked against it (bytes, input size, class
count, input dtype) before the first image, because a model from one export
paired with a manifest from another gives confident nonsense, not an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from segedge.data.images import to_rgb
from segedge.edge.postprocess import class_fractions, logits_to_masks, overlay
from segedge.edge.runtime import OnnxBackend, TensorSpec, TFLiteBackend, open_backend
from segedge.errors import ConfigError, ModelError
from segedge.manifest import MANIFEST_NAME, ArtifactInfo, Manifest, load_manifest, verify_artifact_file
from segedge.preprocess import Placement, preprocess, restore_mask
from segedge.targets import Runtime, runtime_for_file

# Which artifact a bundle folder runs when none is named: the fastest on a Pi
# first (full-integer TFLite), then the float TFLite, then ONNX.
DEFAULT_PREFERENCE: tuple[tuple[str, str], ...] = (
    ("tflite", "int8"), ("tflite", "mixed"), ("tflite", "fp32"), ("onnx", "fp32"), ("onnx", "int8"),
)


def default_threads() -> int:
    """Every core this process may use: LiteRT's Python interpreter otherwise runs on one thread."""
    try:
        return max(1, len(os.sched_getaffinity(0)))  # a container or taskset may allow fewer than cpu_count
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


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
    for wanted in DEFAULT_PREFERENCE:
        for name, info in present.items():
            if (info.runtime, info.precision) == wanted:
                return name, info
    if present:
        return next(iter(present.items()))
    which = f" for runtime {runtime}" if runtime else ""
    listed = ", ".join(info.file for info in manifest.artifacts.values()) or "none listed"
    raise ModelError(f"{bundle}: no model file{which} found beside the manifest (manifest lists: {listed})")


def resolve(path: str | os.PathLike[str], artifact: str | None = None,
            runtime: str | None = None) -> tuple[Path, Manifest, str, ArtifactInfo]:
    """A bundle folder or a model file inside one -> (model path, manifest, artifact name, entry)."""
    path = Path(path)
    if runtime is not None and runtime not in {r.value for r in Runtime}:
        raise ConfigError(f"--runtime must be tflite or onnx, got {runtime!r}")
    if path.is_dir():
        manifest = load_manifest(path)
        name, info = choose_artifact(path, manifest, artifact, runtime)
        return path / info.file, manifest, name, info
    if not path.exists():
        raise ModelError(f"{path}: no such bundle folder or model file")
    runtime_for_file(path.name)  # a clear error for a file that is not .tflite/.onnx
    if not (path.parent / MANIFEST_NAME).is_file():
        raise ModelError(
            f"{path}: no {MANIFEST_NAME} beside it; predict needs the bundle's manifest (input size, "
            "scaling, labels), so copy the model together with its manifest.json"
        )
    manifest = load_manifest(path.parent)
    matches = [(name, info) for name, info in manifest.artifacts.items() if info.file == path.name]
    if not matches:
        raise ModelError(f"{path}: not listed in {path.parent / MANIFEST_NAME}; it is not from this export")
    name, info = matches[0]
    if artifact is not None and artifact != name:
        raise ConfigError(f"{path} is the artifact {name!r}, but --artifact {artifact!r} was given; pass one of them")
    return path, manifest, name, info


def _hw(spec: TensorSpec, nchw: bool) -> tuple[int, int]:
    return (spec.shape[2], spec.shape[3]) if nchw else (spec.shape[1], spec.shape[2])


def check_compatible(model: Path, manifest: Manifest, info: ArtifactInfo, backend: TFLiteBackend | OnnxBackend) -> None:
    """Model vs manifest: input size, output classes, input dtype; ModelError naming both sides."""
    nchw = bool(getattr(backend, "nchw", False))
    shape_in, shape_out = backend.input.shape, backend.output.shape
    if len(shape_in) != 4 or len(shape_out) != 4:
        raise ModelError(f"{model}: expected 4-D input and output tensors, the model has {shape_in} -> {shape_out}")
    height, width = _hw(backend.input, nchw)
    spec = manifest.preprocess
    if (height, width) != (spec.height, spec.width) and -1 not in (height, width):
        raise ModelError(
            f"{model}: model input is {height}x{width} but the manifest's preprocess says "
            f"{spec.height}x{spec.width}; the model and manifest.json come from different exports"
        )
    outputs = shape_out[1] if nchw else shape_out[-1]
    if outputs != manifest.model_outputs:
        raise ModelError(
            f"{model}: model has {outputs} output classes but the manifest's model_outputs is "
            f"{manifest.model_outputs}; the model and manifest.json come from different exports"
        )
    if backend.input.dtype != info.input.dtype:
        raise ModelError(
            f"{model}: model input dtype is {backend.input.dtype} but the manifest records "
            f"{info.input.dtype} for this artifact; the model and manifest.json come from different exports"
        )
    if 0 <= manifest.void < manifest.num_classes:
        raise ModelError(f"{model}: manifest void index {manifest.void} is one of the classes "
                         f"(0..{manifest.num_classes - 1}); re-export the bundle")


def _as_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got {image.shape} {image.dtype}")
        return Image.fromarray(image, "RGB")
    return to_rgb(image)


class Segmenter:
    """One loaded artifact plus its manifest: images in, class-index masks out at the image's size."""

    def __init__(self, model: Path, manifest: Manifest, artifact: str, info: ArtifactInfo,
                 backend: TFLiteBackend | OnnxBackend) -> None:
        self.path, self.manifest, self.artifact, self.info, self.backend = model, manifest, artifact, info, backend

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    def describe(self) -> str:
        return (f"{self.path.name} ({self.artifact}: {self.info.runtime} {self.info.precision}, "
                f"{self.backend.threads} thread{'s' if self.backend.threads != 1 else ''})")

    def logits(self, images: Sequence[Image.Image | np.ndarray]) -> tuple[np.ndarray, list[Placement]]:
        """Float logits at model size for a batch, and where each image sits in the input."""
        inputs, placements = [], []
        for image in images:
            values, placement = preprocess(_as_rgb(image), self.manifest.preprocess)
            inputs.append(values)
            placements.append(placement)
        return self.backend.run(np.stack(inputs)), placements

    def model_masks(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """(N, H, W) masks at model size (void mapped to 255), before resizing back."""
        logits, _ = self.logits(images)
        return logits_to_masks(logits, self.manifest.num_classes, self.manifest.void)

    def predict_batch(self, images: Sequence[Image.Image | np.ndarray]) -> list[np.ndarray]:
        """One HxW uint8 mask per image, each at its image's original size (nearest)."""
        images = [_as_rgb(image) for image in images]
        if not images:
            return []
        logits, placements = self.logits(images)
        masks = logits_to_masks(logits, self.manifest.num_classes, self.manifest.void)
        return [restore_mask(mask, placement, image.size)
                for mask, placement, image in zip(masks, placements, images, strict=True)]

    def predict(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """HxW uint8 class indices (255 = void) for one PIL image or RGB array, at its own size."""
        return self.predict_batch([image])[0]

    def overlay(self, image: Image.Image | np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> Image.Image:
        return overlay(_as_rgb(image), mask, alpha, self.manifest.classes, self.manifest.palette)

    def fractions(self, mask: np.ndarray) -> dict[str, float]:
        return class_fractions(mask, self.manifest.classes)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(path: str | os.PathLike[str], runtime: str | None = None, threads: int | None = None,
         artifact: str | None = None) -> Segmenter:
    """Open a bundle folder (default artifact) or a model file inside a bundle, checked against its manifest."""
    model, manifest, name, info = resolve(path, artifact, runtime)
    if runtime is not None and runtime_for_file(model.name).value != runtime:
        raise ConfigError(f"{model} is a {info.runtime} model; it cannot run with --runtime {runtime}")
    threads = default_threads() if threads is None else threads
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    verify_artifact_file(model, info)
    backend = open_backend(model, runtime_for_file(model.name), threads)
    try:
        check_compatible(model, manifest, info, backend)
    except ModelError:
        backend.close()
        raise
    return Segmenter(model, manifest, name, info, backend)


def batched(items: Iterable, size: int) -> Iterable[list]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
