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

from segedge.contract.runtime import OnnxBackend, TFLiteBackend
from segedge.util.errors import ConfigError

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


def split_threads(threads: int, copies: int) -> list[int]:
    """The threads each copy runs on: ``threads`` shared out, never more in all, the first copies taking
    the remainder (5 threads, 2 copies: [3, 2]).

    More copies than threads would put two copies' kernels on one core each: they would fight for it and
    every frame would wait longer, so that is refused rather than silently oversubscribed.
    """
    if copies < 1:
        raise ConfigError(f"--copies must be at least 1, got {copies}")
    if threads < copies:
        raise ConfigError(f"--copies {copies} needs at least {copies} threads (each copy runs on a thread of "
                          f"its own, sharing --threads), got {threads}: pass --threads {copies} or fewer copies")
    share, extra = divmod(threads, copies)
    return [share + (1 if index < extra else 0) for index in range(copies)]


def with_copies(first: Backend, copies: int, open_copy: Callable[[int], Backend]) -> Backend | BackendPool:
    """``first`` alone, or a pool of it and ``copies - 1`` more from ``open_copy`` (given each copy's index,
    1 to copies - 1); every copy opened so far is closed if one fails to open."""
    if copies <= 1:
        return first
    opened = [first]
    try:
        opened += [open_copy(index) for index in range(1, copies)]
    except BaseException:
        for backend in opened:
            backend.close()
        raise
    return BackendPool(opened)
