"""One small interface over LiteRT, tflite-runtime and onnxruntime.

A backend loads one artifact, says what input it wants (``spec``), and maps a
batch to float32 NHWC logits. The batch is uint8 NHWC pixels (what the device
decodes) or float32 values already scaled per the manifest (older callers).
Artifacts exported by this segedge take pixels 0..255 and scale them inside the
graph (``PreprocessSpec.input == "pixels"``, read from the metadata embedded in
the file, ``segedge.contract.metadata``). ``prepare`` hands them the pixels with no float
round trip: a uint8 tensor with scale 1 and zero point 0 gets them as they are.
Integer models are fed with the scale and zero point read from the model
itself, never from a constant. No TensorFlow anywhere.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segedge.contract import metadata
from segedge.contract.preprocess import PreprocessSpec, scale_pixels, unscale_pixels
from segedge.contract.targets import Runtime, runtime_for_file
from segedge.util.errors import ConfigError, MissingExtraError, ModelError


@dataclass(frozen=True)
class TensorSpec:
    """What a model's input or output tensor is, as the model itself declares it."""

    name: str
    shape: tuple[int, ...]  # -1 where dynamic
    dtype: str              # numpy dtype name: float32, uint8, int8
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.dtype in ("uint8", "int8") and bool(self.scale)


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """float -> the tensor's integer type with its own scale/zero point, saturating."""
    info = np.iinfo(spec.dtype)
    q = np.round(values / np.float32(spec.scale)) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return (values.astype(np.float32) - np.float32(spec.zero_point)) * np.float32(spec.scale)


def effective_spec(path: Path, embedded: dict | None, given: PreprocessSpec | None) -> PreprocessSpec | None:
    """The pre-processing an artifact expects: its embedded metadata's, else the caller's (the manifest's)."""
    if embedded is None:
        return given
    try:
        return PreprocessSpec.from_dict(embedded["preprocess"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise ModelError(f"{path}: its embedded segedge metadata has no valid preprocess ({exc}); "
                         "re-export it") from exc


def model_values(batch: np.ndarray, spec: PreprocessSpec | None, path: Path) -> np.ndarray:
    """What the model's input holds, as numbers: pixels (uint8 or float) or scaled floats.

    uint8 in: pixels for a pixel-input model (returned as they are), scaled here for an
    older scaled-input one. float in: scaled values; a pixel-input model gets the pixels
    back (``rint((x - offset) / scale)``, exact for values ``scale_pixels`` made).
    """
    batch = np.asarray(batch)
    pixels_in = spec is not None and spec.pixels_in
    if batch.dtype == np.uint8:
        if pixels_in:
            return batch
        if spec is None:
            raise ModelError(f"{path}: the model has no embedded pre-processing, so uint8 pixels cannot be "
                             "scaled for it; run it through its bundle (manifest.json)")
        return scale_pixels(batch, spec)
    batch = np.asarray(batch, dtype=np.float32)
    if pixels_in:
        return unscale_pixels(batch, spec)
    return batch


def feed(backend: Any, pixels: np.ndarray, spec: PreprocessSpec) -> Any:
    """uint8 pixels -> ``backend``'s input tensor: the pixels themselves where the backend takes them.

    Edge backends (``preprocess`` known: embedded or given) prepare pixels exactly; others (the
    Keras row, an old file opened without its manifest's spec) get ``scale_pixels`` output.
    """
    if getattr(backend, "preprocess", None) is not None:
        return backend.prepare(pixels)
    return backend.prepare(scale_pixels(pixels, spec))


def typed_input(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Model values -> the input tensor's dtype; uint8 pixels into a scale-1/zero-point-0 uint8 tensor unchanged."""
    if spec.quantized:
        if values.dtype == np.uint8 and spec.dtype == "uint8" and spec.scale == 1.0 and spec.zero_point == 0:
            return values
        return quantize(values.astype(np.float32, copy=False), spec)
    return values.astype(spec.dtype, copy=False)


class Backend(Protocol):
    path: Path
    runtime: Runtime
    threads: int
    input: TensorSpec
    output: TensorSpec

    metadata: dict | None           # the document export embedded in the file (segedge.contract.metadata)
    preprocess: PreprocessSpec | None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """uint8 NHWC pixels (or float32 scaled values) -> float32 NHWC logits."""

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        """``run`` without dequantizing: the output tensor as the runtime gives it."""

    def deferred(self, raw: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray] | None]:
        """``run_raw``'s output -> (values, how to dequantize any part of them; None when float already)."""

    def close(self) -> None: ...


def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: model file is empty (0 bytes); re-export or re-copy it")


def tflite_interpreter_class():
    """LiteRT's Interpreter, else tflite-runtime's; never TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise MissingExtraError("ai_edge_litert", "edge") from exc
    return Interpreter


def _tflite_spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).name
    shape = tuple(int(v) for v in detail.get("shape_signature", detail["shape"]))
    if dtype in ("uint8", "int8") and scale:
        return TensorSpec(detail["name"], shape, dtype, float(scale), int(zero_point))
    return TensorSpec(detail["name"], shape, dtype)


def ort_session_options(ort: Any, threads: int, spin: bool = True) -> Any:
    """The session options every onnxruntime session in segedge (and its benchmarks) uses.

    One intra-op pool of ``threads`` (the calling thread included), sequential execution,
    every graph optimisation; the same settings in the edge backend and in
    ``benchmarks/bench_ops.py`` so a profile explains the latency that bench reports.
    ``spin=False`` stops the pool's idle threads spinning between runs (onnxruntime's
    ``session.intra_op.allow_spinning``): slower alone, but in predict's pipelines the
    reader and writer threads get those cores (224 px onnx-int8, 2 threads, camera loop:
    98 -> 114 fps, docs/design.md).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class TFLiteBackend:
    """LiteRT (``ai_edge_litert``) first, ``tflite_runtime`` as fallback; threads always set."""

    runtime = Runtime.tflite

    def __init__(self, path: str | os.PathLike[str], threads: int = 1, spec: PreprocessSpec | None = None) -> None:
        self.path, self.threads = Path(path), threads
        _check_readable(self.path)
        self.metadata = metadata.read_tflite(self.path)
        self.preprocess = effective_spec(self.path, self.metadata, spec)
        interpreter_class = tflite_interpreter_class()
        try:
            self._interpreter = interpreter_class(model_path=str(self.path), num_threads=threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.path}: not a valid TFLite model ({exc}); re-export or re-copy it") from exc
        self._in = self._interpreter.get_input_details()[0]
        self._out = self._interpreter.get_output_details()[0]
        self.input, self.output = _tflite_spec(self._in), _tflite_spec(self._out)
        self._batch = int(self._in["shape"][0])

    def _resize_batch(self, n: int) -> None:
        shape = [n, *(int(v) for v in self._in["shape"][1:])]
        self._interpreter.resize_tensor_input(self._in["index"], shape)
        self._interpreter.allocate_tensors()
        self._batch = n

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run one already-typed batch; the raw output tensor (the timing hot path)."""
        self._interpreter.set_tensor(self._in["index"], tensor)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._out["index"])

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        """uint8 pixels or float32 scaled NHWC -> what the input tensor holds (quantized for int models)."""
        return typed_input(model_values(batch, self.preprocess, self.path), self.input)

    def finish(self, raw: np.ndarray) -> np.ndarray:
        return dequantize(raw, self.output) if self.output.quantized else raw.astype(np.float32, copy=False)

    def deferred(self, raw: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray] | None]:
        """``raw`` as the mask step takes it: an int8 model's codes and the function that dequantizes any
        part of them (``finish``'s formula, element by element), else ``finish(raw)`` and None."""
        if self.output.quantized and self.output.scale > 0:  # a positive scale keeps the codes' order
            return raw, functools.partial(dequantize, spec=self.output)
        return self.finish(raw), None

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        """The raw output tensor for a batch of pixels (int8 for an int8 model): ``run`` without ``finish``."""
        tensor = self.prepare(batch)
        fixed = self.input.shape[0] != -1
        if len(tensor) != self._batch and not fixed:
            self._resize_batch(len(tensor))
        if len(tensor) == self._batch:
            return self.invoke(tensor)
        # A batch-1 model (what export writes, for XNNPACK): one image at a time.
        return np.concatenate([self.invoke(tensor[i : i + 1]) for i in range(len(tensor))])

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.finish(self.run_raw(batch))

    def close(self) -> None:
        self._interpreter = None


_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(float16)": "float16"}


class OnnxBackend:
    """onnxruntime on the CPU with all graph optimisations and the intra-op threads set."""

    runtime = Runtime.onnx

    def __init__(self, path: str | os.PathLike[str], threads: int = 1, spec: PreprocessSpec | None = None,
                 spin: bool = True) -> None:
        self.path, self.threads = Path(path), threads
        _check_readable(self.path)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingExtraError("onnxruntime", "edge") from exc
        options = ort_session_options(ort, threads, spin)
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelError(f"{self.path}: not a valid ONNX model ({exc}); re-export or re-copy it") from exc
        self.metadata = metadata.read_onnx_session(self._session, str(self.path))
        self.preprocess = effective_spec(self.path, self.metadata, spec)
        meta_in, meta_out = self._session.get_inputs()[0], self._session.get_outputs()[0]

        def dims(shape) -> tuple[int, ...]:
            return tuple(int(v) if isinstance(v, int) else -1 for v in shape)

        self.input = TensorSpec(meta_in.name, dims(meta_in.shape), _ORT_TYPES.get(meta_in.type, meta_in.type))
        self.output = TensorSpec(meta_out.name, dims(meta_out.shape), _ORT_TYPES.get(meta_out.type, meta_out.type))
        self.nchw = len(self.input.shape) == 4 and self.input.shape[1] == 3 and self.input.shape[3] != 3
        self._out_name = meta_out.name

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        """uint8 pixels or float32 scaled NHWC -> the float32 input (pixels cast exactly for pixel-input models)."""
        batch = typed_input(model_values(batch, self.preprocess, self.path), self.input)
        if self.nchw:
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return batch

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        return self._session.run([self._out_name], {self.input.name: tensor})[0]

    def finish(self, raw: np.ndarray) -> np.ndarray:
        if self.nchw:
            raw = raw.transpose(0, 2, 3, 1)
        return np.asarray(raw, dtype=np.float32)

    def deferred(self, raw: np.ndarray) -> tuple[np.ndarray, None]:
        """``finish(raw)`` and None: an ONNX int8 (QDQ) model's output is float already."""
        return self.finish(raw), None

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        """The raw output for a batch of pixels (NCHW when the model is): ``run`` without ``finish``."""
        tensor = self.prepare(batch)
        if self.input.shape[0] not in (-1, len(tensor)):
            return np.concatenate([self.invoke(tensor[i : i + 1]) for i in range(len(tensor))])
        return self.invoke(tensor)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.finish(self.run_raw(batch))

    def close(self) -> None:
        self._session = None


def open_backend(path: str | os.PathLike[str], runtime: Runtime | str | None = None, threads: int = 1,
                 spec: PreprocessSpec | None = None, spin: bool = True) -> TFLiteBackend | OnnxBackend:
    """Open an artifact with the runtime its extension implies (or the one asked for).

    ``spec`` (the manifest's pre-processing) is used only when the file carries no
    embedded metadata (an older export); the file's own metadata wins otherwise.
    ``spin=False``: onnxruntime's idle pool threads sleep instead of spinning (``ort_session_options``);
    LiteRT has no such setting.
    """
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    chosen = Runtime(runtime) if runtime else runtime_for_file(str(path))
    if chosen is Runtime.tflite:
        return TFLiteBackend(path, threads, spec)
    return OnnxBackend(path, threads, spec, spin)
