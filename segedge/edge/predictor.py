"""``load(bundle_or_model) -> Segmenter``: the whole edge inference path in one object.

The bundle's manifest is the source of pre-processing, labels and void
handling; the model file is checked against it (bytes, input size, class
count, input dtype, and the metadata export embedded in the file) before the
first image, because a model from one export paired with a manifest from
another gives confident nonsense, not an error. A model file alone (no
manifest.json beside it) runs on its embedded metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from segedge.contract import metadata
from segedge.contract.manifest import MANIFEST_NAME, ArtifactInfo, Manifest, verify_artifact_file
from segedge.contract.preprocess import Placement, resize_uint8
from segedge.contract.runtime import OnnxBackend, TensorSpec, TFLiteBackend, open_backend
from segedge.contract.targets import runtime_for_file
from segedge.contract.upsample import check_upsample
from segedge.data.images import orientation, read_upright
from segedge.edge.artifacts import resolve
from segedge.edge.copies import BackendPool, split_threads, with_copies
from segedge.edge.postprocess import class_fractions, image_masks, logits_to_masks, overlay
from segedge.util.errors import ConfigError, ModelError


def default_threads() -> int:
    """Every core this process may use: LiteRT's Python interpreter otherwise runs on one thread."""
    try:
        return max(1, len(os.sched_getaffinity(0)))  # a container or taskset may allow fewer than cpu_count
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


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


ImageInput = str | os.PathLike[str] | Image.Image | np.ndarray
"""What ``Segmenter.predict`` takes: an image file path, a PIL image, or an HxWx3 uint8 RGB numpy array."""

_ACCEPTED = "a path (str or os.PathLike), a PIL image, or an HxWx3 uint8 RGB numpy array"


def as_rgb(image: ImageInput) -> Image.Image:
    """One input as the 8-bit RGB image the model sees; ConfigError for anything else.

    Paths and PIL images go through ``read_upright``, the same decode + EXIF
    orientation + alpha-dropping conversion ``segedge predict`` uses. An
    array is taken as RGB pixels already upright (it has no EXIF); BGR frames
    from OpenCV must be converted by the caller.
    """
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ConfigError(f"predict() takes {_ACCEPTED}; got an array of shape {image.shape} and dtype "
                              f"{image.dtype} (RGBA: pass array[..., :3]; float: convert to uint8 0-255 first)")
        return Image.fromarray(image, "RGB")
    if isinstance(image, (str, os.PathLike, Image.Image)):
        return read_upright(image)
    raise ConfigError(f"predict() takes {_ACCEPTED}; got {type(image).__name__}")


class Segmenter:
    """One loaded artifact plus its manifest: images in, class-index masks out at the image's size."""

    def __init__(self, model: Path, manifest: Manifest, artifact: str, info: ArtifactInfo,
                 backend: TFLiteBackend | OnnxBackend | BackendPool, upsample: str | None = None) -> None:
        self.path, self.manifest, self.artifact, self.info, self.backend = model, manifest, artifact, info, backend
        # logits | mask: the manifest's choice (made at export, the reference set's too) unless overridden
        self.upsample = check_upsample(upsample) if upsample is not None else manifest.upsample

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    @property
    def copies(self) -> int:
        """Copies of the model that can segment frames at once (``load(copies=...)``); the pipeline runs
        one inference thread per copy."""
        return int(getattr(self.backend, "copies", 1))

    def describe(self) -> str:
        each = [backend.threads for backend in getattr(self.backend, "backends", [self.backend])]
        if len(set(each)) > 1:  # threads that do not divide evenly: say what each copy got
            runs = f"{self.copies} copies on {'+'.join(map(str, each))} threads"
        else:
            threads = f"{each[0]} thread{'s' if each[0] != 1 else ''}"
            runs = f"{self.copies} copies x {threads}" if self.copies > 1 else threads
        return f"{self.path.name} ({self.artifact}: {self.info.runtime} {self.info.precision}, {runs})"

    def logits(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, list[Placement]]:
        """Float logits at model size for a batch, and where each image sits in the input."""
        return self._logits([as_rgb(image) for image in images])

    def _logits(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, list[Placement]]:
        batch, placements = self._batch(images)
        return self.backend.run(batch), placements

    def _batch(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, list[Placement]]:
        """Model-size uint8 pixels for a batch (the backend feeds them as they are to a pixel-input model),
        and where each image sits in the input."""
        inputs, placements = [], []
        for image in images:
            pixels, placement = resize_uint8(image, self.manifest.preprocess)
            inputs.append(pixels)
            placements.append(placement)
        return np.stack(inputs), placements

    def prepare(self, image: ImageInput) -> tuple[np.ndarray, Placement, tuple[int, int]]:
        """One image -> (model-size uint8 pixels, where they sit, the upright image's (width, height)).

        ``prepare``, ``infer`` and ``full_mask`` are ``predict`` in three steps, so a
        pipeline (the camera loop) can run each in its own thread and skip the
        full-size mask of a frame nobody looks at.
        """
        rgb = as_rgb(image)
        pixels, placement = resize_uint8(rgb, self.manifest.preprocess)
        return pixels, placement, rgb.size

    def infer(self, pixels: np.ndarray) -> np.ndarray:
        """Model-size uint8 pixels (H, W, 3) -> float logits (H, W, C): the runtime call and dequantizing."""
        return self.backend.run(pixels[None])[0]

    def infer_raw(self, pixels: np.ndarray) -> np.ndarray:
        """``infer`` without dequantizing: the runtime's output as it comes (int8 for an int8 model).

        The pipeline's inference thread calls this and leaves ``mask_from`` to
        the writer, for the frames whose mask is made: a camera frame that is
        neither saved, printed nor shown is never dequantized.
        """
        return self.backend.run_raw(pixels[None])

    def logits_from(self, raw: np.ndarray) -> np.ndarray:
        """``infer_raw``'s output -> the float logits (H, W, C) ``infer`` gives."""
        return self.backend.finish(raw)[0]

    def full_mask(self, logits: np.ndarray, placement: Placement, size: tuple[int, int]) -> np.ndarray:
        """Logits from ``infer`` -> the HxW uint8 mask at ``size`` = (width, height), as ``predict`` makes it."""
        return image_masks(logits[None], [placement], [size], self.upsample, self.manifest.num_classes,
                           self.manifest.void)[0]

    def mask_from(self, raw: np.ndarray, placement: Placement, size: tuple[int, int]) -> np.ndarray:
        """``infer_raw``'s output -> the mask ``full_mask(logits_from(raw), ...)`` gives, dequantizing only
        what the mask needs: for an int8 model the argmax runs on the codes and only the taps at class
        boundaries become floats (224 px, 21 classes: the whole tensor was 0.8 ms of a photo's writer
        work). ``predict`` and the pipeline's writer both end here, so the proof covers this path."""
        values, to_float = self.backend.deferred(raw)
        return image_masks(values[:1], [placement], [size], self.upsample, self.manifest.num_classes,
                           self.manifest.void, to_float)[0]

    def model_masks(self, images: Sequence[ImageInput]) -> np.ndarray:
        """(N, H, W) masks at model size (void mapped to 255), before resizing back."""
        logits, _ = self.logits(images)
        return logits_to_masks(logits, self.manifest.num_classes, self.manifest.void)

    def predict_batch(self, images: Sequence[ImageInput]) -> list[np.ndarray]:
        """One HxW uint8 mask per input (see ``predict``), each at its upright image's size."""
        if isinstance(images, (str, os.PathLike, Image.Image)):
            raise ConfigError("predict_batch() takes a list of images; for one image call predict()")
        rgb = [as_rgb(image) for image in images]
        if not rgb:
            return []
        batch, placements = self._batch(rgb)
        values, to_float = self.backend.deferred(self.backend.run_raw(batch))
        return image_masks(values, placements, [image.size for image in rgb], self.upsample,
                           self.manifest.num_classes, self.manifest.void, to_float)

    def predict(self, image: ImageInput) -> np.ndarray:
        """HxW uint8 class indices (255 = void) for one image, at the size a viewer shows it.

        ``image`` is a file path (str or os.PathLike), a PIL image (any mode), or
        an HxWx3 uint8 numpy array of RGB pixels. Paths and PIL images are
        read exactly as ``segedge predict`` reads files: EXIF orientation
        applied, alpha dropped, 16-bit and palette images converted to RGB.
        Anything else raises a one-line ConfigError.
        """
        pixels, placement, size = self.prepare(image)
        return self.mask_from(self.infer_raw(pixels), placement, size)

    def overlay(self, image: ImageInput, mask: np.ndarray, alpha: float = 0.5, *,
                counts: Sequence[int] | None = None, in_place: bool = False) -> Image.Image:
        """The upright image with ``mask`` drawn over it in the bundle's palette, plus a legend.

        ``counts``: the mask's pixels per index (``mask_counts``) when already counted. ``in_place``: draw on
        ``image`` itself, a PIL RGB image the caller is done with (a 12 MP photo: one copy fewer)."""
        if not (isinstance(image, Image.Image) and image.mode == "RGB" and orientation(image) == 1):
            image = as_rgb(image)  # else already what as_rgb gives: its copy would be one more full-size image
        return overlay(image, mask, alpha, self.manifest.classes, self.manifest.palette, counts=counts,
                       in_place=in_place)

    def fractions(self, mask: np.ndarray, counts: Sequence[int] | None = None) -> dict[str, float]:
        return class_fractions(mask, self.manifest.classes, counts)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(path: str | os.PathLike[str], runtime: str | None = None, threads: int | None = None,
         artifact: str | None = None, upsample: str | None = None, spin: bool = True,
         copies: int = 1) -> Segmenter:
    """Open a bundle folder (default artifact) or a model file (checked against the manifest beside it, or run
    on its embedded metadata when there is none).

    ``upsample`` (logits | mask) overrides the manifest's post-processing choice. ``spin=False`` lets
    onnxruntime's idle threads sleep between runs: for a pipeline whose other threads need the cores
    (``segedge predict`` on a camera or several photos), not for timing one model alone.
    ``copies`` > 1 opens that many copies of the model and shares ``threads`` among them (at least
    one each, never more in all: ``segedge.edge.copies.split_threads``): a pipeline then segments that
    many frames at once.
    """
    model, manifest, name, info = resolve(path, artifact, runtime)
    kind = runtime_for_file(model.name).value
    if runtime is not None and kind != runtime:
        raise ConfigError(f"{model} is a {kind} model; it cannot run with --runtime {runtime}")
    threads = default_threads() if threads is None else threads
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    shares = split_threads(threads, copies)  # per copy of the model
    threads = shares[0]
    if upsample is not None:
        check_upsample(upsample)
    if manifest is None:
        segmenter = _load_bare(model, artifact, threads, upsample, spin)
    else:
        verify_artifact_file(model, info)
        backend = open_backend(model, kind, threads, spec=manifest.preprocess, spin=spin)
        try:
            check_compatible(model, manifest, info, backend)
            metadata.check_manifest(model, backend.metadata, manifest)
        except ModelError:
            backend.close()
            raise
        segmenter = Segmenter(model, manifest, name, info, backend, upsample)
    spec = manifest.preprocess if manifest is not None else None
    segmenter.backend = with_copies(  # more copies of the file just checked, opened as the first was
        segmenter.backend, copies, lambda index: open_backend(model, kind, shares[index], spec=spec, spin=spin))
    return segmenter


def _load_bare(model: Path, artifact: str | None, threads: int, upsample: str | None = None,
               spin: bool = True) -> Segmenter:
    """A model file with no manifest.json beside it: labels, palette and pre-processing from its metadata."""
    missing = (f"{model}: no {MANIFEST_NAME} beside it and no segedge metadata inside; predict needs the "
               "bundle's manifest (input size, scaling, labels), so copy the model together with its manifest.json")
    if model.suffix == ".tflite" and metadata.read_tflite(model) is None:
        raise ModelError(missing)  # before the interpreter: random bytes get the manifest hint, not a parse error
    try:
        backend = open_backend(model, runtime_for_file(model.name), threads, spin=spin)
    except ModelError as exc:
        raise ModelError(f"{missing} ({exc.message})") from exc
    try:
        if backend.metadata is None:
            raise ModelError(missing)
        manifest, name, info = metadata.bare_manifest(model, backend.metadata, backend.input, backend.output)
        if artifact is not None and artifact != name:
            raise ConfigError(f"{model} is the artifact {name!r}, but --format {artifact!r} was given; "
                              "pass one of them")
        check_compatible(model, manifest, info, backend)
    except (ModelError, ConfigError):
        backend.close()
        raise
    return Segmenter(model, manifest, name, info, backend, upsample)


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
