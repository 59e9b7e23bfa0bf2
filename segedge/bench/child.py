"""One artifact, one thread count, one fresh process: ``python -m segedge.bench.child JOB RESULT``.

Bench runs every measurement here rather than in its own process so that peak
RSS belongs to this artifact alone (one model's arena cannot inflate the next
one's figure) and init time is a cold load. The job and the result are JSON
files; a failure is reported as ``{"ok": false, "error": ...}`` so the parent
turns it into a row, not a crash. Imports stay light: TensorFlow is loaded only
for the Keras row, inside ``segedge.train.keras_backend``.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segedge.bench.machine import installed_version
from segedge.bench.stats import NS_PER_MS, summarize_ns
from segedge.bench.timing import (
    current_rss_mb,
    peak_rss_mb,
    throughput_fps,
    time_call,
    time_end_to_end,
    time_invoke,
)
from segedge.contract.manifest import ArtifactInfo, TensorInfo, load_manifest
from segedge.contract.preprocess import PreprocessSpec
from segedge.contract.reference import flatten, unflatten
from segedge.contract.runtime import feed
from segedge.data.images import read_upright
from segedge.edge.predictor import Segmenter
from segedge.util import fileio
from segedge.util.errors import SegedgeError

KERAS = "keras"


@dataclass
class PredictJob:
    """Predict every image FILE in ``images`` with ``Segmenter.predict_batch`` (the product's predict path)
    and save the masks, each at its upright image's size, to ``out`` (.npz: ``flat`` + ``shapes``)."""

    images: list[str]
    out: str


@dataclass
class ChildJob:
    artifact: str
    path: str
    runtime: str  # tflite | onnx | keras
    threads: int
    warmup: int
    runs: int
    preprocess: dict[str, Any]
    latency_input: str  # .npy of uint8 images; the first one is timed
    e2e_images: list[str] = field(default_factory=list)
    predict: list[PredictJob] = field(default_factory=list)
    manifest: str = ""  # the bundle's manifest.json: what the Segmenter reads (labels, void, upsample)
    min_secs: float = 0.0  # time budget (benchmark_model's): at least `runs` calls AND min_secs ...
    max_secs: float | None = None  # ... but stop at max_secs
    profile: int = 0  # > 0: profile per op type over this many runs (segedge.bench.profile)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChildJob:
        data = dict(data)
        data["predict"] = [PredictJob(**p) for p in data.get("predict", [])]
        return cls(**data)


def _import_runtime(runtime: str) -> str | None:
    """Import the runtime library before measuring, so init time is the model load alone.

    Returns the runtime's version (from package metadata, nothing imported for it).
    """
    if runtime == KERAS:
        from segedge.train.keras_backend import import_tensorflow

        import_tensorflow()  # the Keras row only; never in the edge install
        names = ("tensorflow-cpu", "tensorflow")
    elif runtime == "onnx":
        import onnxruntime  # noqa: F401

        names = ("onnxruntime",)
    else:
        from segedge.contract.runtime import tflite_interpreter_class

        tflite_interpreter_class()
        names = ("ai-edge-litert", "tflite-runtime")
    return installed_version(*names)


def _open(job: ChildJob):
    if job.runtime == KERAS:
        from segedge.train.keras_backend import KerasBackend

        return KerasBackend(job.path, threads=job.threads, spec=PreprocessSpec.from_dict(job.preprocess))
    from segedge.contract.runtime import open_backend

    return open_backend(job.path, runtime=job.runtime, threads=job.threads)


def segmenter_for(job: ChildJob, backend) -> Segmenter:
    """The product's ``Segmenter`` around an already opened backend (the Keras row's too)."""
    manifest = load_manifest(job.manifest)
    info = manifest.artifacts.get(job.artifact)
    if info is None:  # the Keras row: no manifest entry, same pre- and post-processing
        tensor = TensorInfo(backend.input.name, backend.input.dtype, list(backend.input.shape))
        info = ArtifactInfo(Path(job.path).name, job.runtime, "fp32", "", 0, tensor, tensor)
    return Segmenter(Path(job.path), manifest, job.artifact, info, backend)


def _predict(segmenter: Segmenter, job: PredictJob) -> None:
    """One image at a time, exactly as ``segedge predict`` runs them; masks saved flat with their shapes."""
    masks = [segmenter.predict(path) for path in job.images]
    flat, shapes = flatten(masks)
    np.savez(job.out, flat=flat, shapes=shapes)


def load_masks(path: str | Path) -> list[np.ndarray]:
    """The masks a ``PredictJob`` saved."""
    with np.load(path, allow_pickle=False) as data:
        return unflatten(data["flat"], data["shapes"])


def measure(job: ChildJob) -> dict[str, Any]:
    """Load, time and (optionally) predict; the numbers the parent turns into a row."""
    spec = PreprocessSpec.from_dict(job.preprocess)
    version = _import_runtime(job.runtime)
    sample = np.array(np.load(job.latency_input, mmap_mode="r")[:1])
    base_rss = current_rss_mb()
    backend, init_ns = time_call(lambda: _open(job))
    tensor = feed(backend, sample, spec)
    _, first_ns = time_call(lambda: backend.invoke(tensor))
    wall: list[int] = []
    samples = time_invoke(backend.invoke, tensor, job.warmup, job.runs, job.min_secs, job.max_secs, wall)
    peak = peak_rss_mb()  # before end-to-end and prediction buffers can add to it
    result: dict[str, Any] = {
        "ok": True,
        "artifact": job.artifact,
        "runtime": job.runtime,
        "threads": job.threads,
        "runtime_version": version,
        "input_dtype": backend.input.dtype,
        "input_shape": list(backend.input.shape),
        "init_ms": init_ns / NS_PER_MS,
        "first_ms": first_ns / NS_PER_MS,
        **summarize_ns(samples),
        "fps": throughput_fps(len(samples), wall[0]) if wall else None,
        "samples_ms": [v / NS_PER_MS for v in samples],
        "base_rss_mb": base_rss,
        "peak_rss_mb": peak,
    }
    segmenter = segmenter_for(job, backend) if (job.e2e_images or job.predict) else None
    if segmenter is not None and job.e2e_images:
        result.update(time_end_to_end(backend, spec, [Path(p) for p in job.e2e_images], read_upright,
                                      segmenter.mask_from))
    if job.profile > 0 and job.runtime != KERAS:
        from segedge.bench.profile import profile_artifact

        result["profile"] = profile_artifact(job.runtime, job.path, job.threads, tensor, job.profile).to_dict()
    for predict_job in job.predict:
        _predict(segmenter or segmenter_for(job, backend), predict_job)
    backend.close()
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m segedge.bench.child JOB.json RESULT.json", file=sys.stderr)
        return 2
    job_path, result_path = args
    try:
        job = ChildJob.from_dict(json.loads(Path(job_path).read_text(encoding="utf-8")))
        result = measure(job)
    except SegedgeError as exc:
        result = {"ok": False, "error": exc.message}
    except Exception as exc:  # any runtime failure becomes a row with an error, not a lost bench
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    fileio.write_json(result_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
