"""Stage timers around the predict pipeline's two inputs: the segmenter and the capture.

``segedge.edge.pipeline.Pipeline`` calls ``prepare``, ``infer_raw`` and ``mask_from`` on whatever
segmenter it is given, and ``read`` on whatever capture; these wrappers pass each call through to
the real ``Segmenter`` and capture unchanged and record how long it took, so the page and
/metrics show per-stage times of the very pipeline ``segedge predict --camera`` runs, without a
hook in it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from segedge.edge.predictor import Segmenter
from segedge.serve.stats import Stats


class TimedSegmenter:
    """``Segmenter`` as the pipeline's ``Stages`` sees it, each stage timed under ``source``."""

    def __init__(self, segmenter: Segmenter, stats: Stats, source: str = "camera") -> None:
        self.segmenter, self.stats, self.source = segmenter, stats, source

    @property
    def copies(self) -> int:
        return self.segmenter.copies

    def _timed(self, stage: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.stats.observe(self.source, stage, time.perf_counter() - start)

    def prepare(self, image: Any) -> Any:
        return self._timed("prepare", self.segmenter.prepare, image)

    def infer(self, pixels: np.ndarray) -> np.ndarray:
        return self._timed("inference", self.segmenter.infer, pixels)

    def infer_raw(self, pixels: np.ndarray) -> np.ndarray:
        return self._timed("inference", self.segmenter.infer_raw, pixels)

    def full_mask(self, logits: np.ndarray, placement: Any, size: tuple[int, int]) -> np.ndarray:
        return self._timed("mask", self.segmenter.full_mask, logits, placement, size)

    def mask_from(self, raw: np.ndarray, placement: Any, size: tuple[int, int]) -> np.ndarray:
        return self._timed("mask", self.segmenter.mask_from, raw, placement, size)


class TimedCapture:
    """A capture (OpenCV ``VideoCapture`` or picamera2) whose ``read`` is timed as the capture stage.

    ``pace_fps`` > 0 (a video file played as a camera) holds each frame until its time in the file, so a
    page shows the clip at its own speed instead of as fast as the model runs.
    """

    def __init__(self, capture: Any, stats: Stats, pace_fps: float = 0.0) -> None:
        self.capture, self.stats, self.pace_fps = capture, stats, pace_fps
        self._start: float | None = None
        self._count = 0

    def read(self) -> tuple[bool, Any]:
        if self.pace_fps > 0:
            now = time.perf_counter()
            if self._start is None:
                self._start = now
            wait = self._start + self._count / self.pace_fps - now
            if wait > 0:
                time.sleep(min(wait, 1.0))
            self._count += 1
        start = time.perf_counter()
        result = self.capture.read()
        self.stats.observe("camera", "capture", time.perf_counter() - start)
        return result

    def release(self) -> None:
        self.capture.release()
