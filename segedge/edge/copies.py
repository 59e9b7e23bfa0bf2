"""Several copies of one model behind one backend's calls (``load(copies=N)``, ``predict --copies``).

Edge only: the copies are opened on a file ``load`` has already checked
against its manifest, and the pipeline (``segedge.edge.pipeline``) runs one
inference thread per copy.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from segedge.runtime import OnnxBackend, TFLiteBackend

Backend = TFLiteBackend | OnnxBackend


class BackendPool:
    """Several copies of one model behind one backend's calls: each call borrows a copy nobody is using.

    A stream of frames (a video file) on N cores runs faster as N
    one-thread interpreters working on N frames at once than as one N-thread
    interpreter on one frame: each interpreter runs a whole frame on its core
    with no hand-off between threads inside a layer, and a core the reader or
    writer needs for a moment delays one frame, not every layer of all of them
    (224 px int8, 2 cores, ``predict --camera`` on a video: 165 -> 199 fps,
    docs/design.md). Each frame then waits one core's time rather than N
    cores', which a live view shows as that much more lag.
    """

    def __init__(self, backends: Sequence[Backend]) -> None:
        if not backends:
            raise ValueError("a pool needs at least one backend")
        self.backends = list(backends)
        first = self.backends[0]
        self.path, self.runtime, self.input, self.output = first.path, first.runtime, first.input, first.output
        self.metadata, self.preprocess = first.metadata, first.preprocess
        self.nchw = bool(getattr(first, "nchw", False))
        self.threads = first.threads  # per copy: what each frame runs on
        self.copies = len(self.backends)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for backend in self.backends:
            self._free.put(backend)

    @contextmanager
    def _borrowed(self) -> Iterator[Backend]:
        backend = self._free.get()  # waits while every copy is busy
        try:
            yield backend
        finally:
            self._free.put(backend)

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        return self.backends[0].prepare(batch)  # reads only the specs, which every copy shares

    def finish(self, raw: np.ndarray) -> np.ndarray:
        return self.backends[0].finish(raw)

    def deferred(self, raw: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray] | None]:
        return self.backends[0].deferred(raw)

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        with self._borrowed() as backend:
            return backend.invoke(tensor)

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        with self._borrowed() as backend:
            return backend.run_raw(batch)

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.finish(self.run_raw(batch))

    def close(self) -> None:
        for backend in self.backends:
            backend.close()


def with_copies(first: Backend, copies: int, open_copy: Callable[[], Backend]) -> Backend | BackendPool:
    """``first`` alone, or a pool of it and ``copies - 1`` more from ``open_copy``; every copy opened so far
    is closed if one fails to open."""
    if copies <= 1:
        return first
    opened = [first]
    try:
        opened += [open_copy() for _ in range(copies - 1)]
    except BaseException:
        for backend in opened:
            backend.close()
        raise
    return BackendPool(opened)
