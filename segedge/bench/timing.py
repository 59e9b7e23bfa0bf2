"""The timing loops bench uses, in one place so the overhead script times the same code.

Only the runtime call sits between the two clock reads: the input tensor is
prepared once beforehand, so quantizing, layout changes and Python overhead of
our own code never leak into the latency figures. End-to-end time is measured
separately, stage by stage, so a user sees where the rest of the time goes.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segedge.bench.stats import NS_PER_MS, mean, percentile
from segedge.contract.preprocess import Placement, PreprocessSpec, resize_uint8, restore_mask
from segedge.contract.runtime import feed


class Invokable(Protocol):
    """What bench needs from a backend (runtime.py's backends and the Keras one)."""

    def prepare(self, batch: np.ndarray) -> Any: ...

    def invoke(self, tensor: Any) -> Any: ...

    def finish(self, raw: Any) -> np.ndarray: ...


def time_call(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` once; its result and the nanoseconds it took."""
    start = time.perf_counter_ns()
    result = fn()
    return result, time.perf_counter_ns() - start


def time_invoke(invoke: Callable[[Any], Any], tensor: Any, warmup: int, runs: int,
                min_secs: float = 0.0, max_secs: float | None = None, wall: list[int] | None = None) -> list[int]:
    """``warmup`` untimed calls, then timed calls each on its own, in nanoseconds.

    As TFLite's ``benchmark_model``: keep running until at least ``runs`` calls
    AND ``min_secs`` of timed calls, but stop once ``max_secs`` have passed
    (at least one call is always timed). With the defaults exactly ``runs``.
    ``wall`` (a list) receives the nanoseconds from the first timed call's start to
    the last one's end: back-to-back calls, the clock reads and the loop included,
    which is what a stream of frames at batch 1 gets (``throughput_fps``).
    The garbage collector is paused while timing (as ``timeit`` does) so a
    collection triggered by our own bookkeeping does not land in a sample.
    """
    for _ in range(warmup):
        invoke(tensor)
    samples: list[int] = []
    clock = time.perf_counter_ns
    min_ns = int(min_secs * 1e9)
    if runs <= 0 and min_ns <= 0:  # warm-up only (the overhead script's use)
        return samples
    max_ns = None if max_secs is None else int(max_secs * 1e9)
    collecting = gc.isenabled()
    gc.disable()
    try:
        began = clock()
        while True:
            start = clock()
            invoke(tensor)
            end = clock()
            samples.append(end - start)
            elapsed = end - began
            if max_ns is not None and elapsed >= max_ns:
                break
            if len(samples) >= runs and elapsed >= min_ns:
                break
    finally:
        if collecting:
            gc.enable()
    if wall is not None and samples:
        wall.append(end - began)
    return samples


def throughput_fps(calls: int, wall_ns: int) -> float | None:
    """Frames per second of ``calls`` back-to-back batch-1 calls that took ``wall_ns`` in all."""
    return calls / (wall_ns / 1e9) if calls and wall_ns > 0 else None


def logits_to_mask(logits: np.ndarray) -> np.ndarray:
    """HxWxC logits -> HxW uint8 class indices (argmax; the seed preset's void stays 21)."""
    return np.asarray(logits).argmax(axis=-1).astype(np.uint8)


def time_end_to_end(backend: Invokable, spec: PreprocessSpec, images: Sequence[Path],
                    read: Callable[[Path], Any],
                    to_mask: Callable[[np.ndarray, Placement, tuple[int, int]], np.ndarray] | None = None,
                    ) -> dict[str, float]:
    """Mean milliseconds per image for each stage: load, preprocess, infer, postprocess.

    load = decode the file (+ EXIF orientation with ``read_upright``); preprocess
    = resize + make the input tensor (pixels as they are for a pixel-input
    artifact; scaled here for the Keras row); infer = the runtime call alone (as
    in the latency rows); postprocess = ``to_mask`` on the runtime's raw output
    (``Segmenter.mask_from``: dequantizing what the mask needs, upsample +
    argmax to the image's own size; default: dequantize, argmax at model size,
    then nearest).
    """
    if to_mask is None:
        def to_mask(raw: np.ndarray, placement: Placement, size: tuple[int, int]) -> np.ndarray:
            return restore_mask(logits_to_mask(backend.finish(raw)[0]), placement, size)

    stages: dict[str, list[float]] = {"load": [], "preprocess": [], "infer": [], "postprocess": [], "total": []}
    clock = time.perf_counter_ns
    for path in images:
        t0 = clock()
        image = read(path)
        t1 = clock()
        pixels, placement = resize_uint8(image, spec)
        tensor = feed(backend, pixels[None], spec)
        t2 = clock()
        raw = backend.invoke(tensor)
        t3 = clock()
        to_mask(raw, placement, image.size)
        t4 = clock()
        for key, ns in (("load", t1 - t0), ("preprocess", t2 - t1), ("infer", t3 - t2),
                        ("postprocess", t4 - t3), ("total", t4 - t0)):
            stages[key].append(ns / NS_PER_MS)
    result = {f"e2e_{key}_ms": mean(values) for key, values in stages.items()}
    result["e2e_p50_ms"] = percentile(stages["total"], 50)
    result["e2e_images"] = len(images)
    return result


def _proc_status_mb(field: str) -> float | None:
    """A ``kB`` field of ``/proc/self/status`` (KiB) in MB = 10^6 bytes (Linux); None elsewhere."""
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        return None
    return None


def peak_rss_mb() -> float | None:
    """This process's peak resident set size so far, in MB (10^6 bytes, as file sizes); None where unknown.

    Linux: ``VmHWM``, the high-water mark of this process's own address space.
    ``ru_maxrss`` is not used there because the kernel carries it across
    ``exec``: a child spawned by a 3 GB parent (pytest with TensorFlow loaded)
    reports 3 GB before it has loaded anything. Elsewhere ``ru_maxrss`` is
    the best there is (bytes on macOS, KiB on other systems).
    """
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def current_rss_mb() -> float | None:
    """Resident set size now (Linux ``VmRSS``), in MB (10^6 bytes); None elsewhere."""
    return _proc_status_mb("VmRSS")
