"""The model being served, and the one way it is replaced: load, self-check, then swap.

Requests and the camera feed borrow the current model (``use``) for the length of one piece of
work; a reload opens the new model beside it, runs the self-check, and only then swaps the
pointer. The old model is closed when its last borrower returns it, so no request ever sees a
half-loaded model or a closed interpreter, and a failed reload leaves the old one serving with
the error kept for /healthz and the reload's answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from segedge.edge.copies import BackendPool
from segedge.edge.predictor import Segmenter, load
from segedge.serve.selfcheck import CheckResult, self_check
from segedge.util.errors import ModelError, SegedgeError


@dataclass(frozen=True)
class LoadOptions:
    """What ``load`` is called with, the same options as ``segedge predict``; a reload re-reads ``path``."""

    path: Path
    artifact: str | None = None
    runtime: str | None = None
    threads: int | None = None
    copies: int = 1
    upsample: str | None = None


@dataclass
class Served:
    """One loaded model and its self-check; ``generation`` counts the swaps (1 = the model served at start)."""

    segmenter: Segmenter
    check: CheckResult
    generation: int
    loaded_at: float = field(default_factory=time.time)
    borrowers: int = 0
    retired: bool = False


class ReloadBusy(Exception):
    """A reload was asked for while another is still loading."""


def open_checked(options: LoadOptions, generation: int) -> Served:
    """Load as predict loads (``spin=False``: the camera and requests share the cores), every backend call
    made exclusive (one interpreter is not safe to call from two threads: requests and the camera
    feed take turns, or take one copy each with ``copies`` > 1), then self-check."""
    segmenter = load(options.path, runtime=options.runtime, threads=options.threads, artifact=options.artifact,
                     upsample=options.upsample, spin=False, copies=options.copies)
    try:
        if not isinstance(segmenter.backend, BackendPool):
            segmenter.backend = BackendPool([segmenter.backend])
        check = self_check(segmenter)
    except BaseException:
        segmenter.close()
        raise
    return Served(segmenter, check, generation)


class ModelHolder:
    """The current ``Served`` model, borrowed by requests and the camera, replaced only by ``reload``."""

    def __init__(self, options: LoadOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._reloading = threading.Lock()
        self._current: Served | None = None
        self.last_reload: dict | None = None  # {"ok", "at", "error" | "generation"}
        self.listeners: list[Callable[[], None]] = []  # called after a swap (the camera feed restarts on it)

    def start(self) -> Served:
        """The first model; a failed self-check refuses to serve at all (ModelError naming the bundle)."""
        served = open_checked(self.options, 1)
        if not served.check.ok:
            served.segmenter.close()
            raise ModelError(f"{self.options.path}: the self-check on its reference images failed: "
                             f"{served.check.note}; re-export the bundle or run 'segedge bench' on it")
        self._current = served
        return served

    @property
    def loaded(self) -> Served | None:
        """The current model, or None before ``start`` and after ``close``."""
        return self._current

    @property
    def current(self) -> Served:
        if self._current is None:
            raise RuntimeError("no model loaded")
        return self._current

    @contextmanager
    def use(self) -> Iterator[Served]:
        """Borrow the current model for one piece of work; a swap meanwhile closes it only after it returns."""
        with self._lock:
            served = self.current
            served.borrowers += 1
        try:
            yield served
        finally:
            with self._lock:
                served.borrowers -= 1
                close = served.retired and served.borrowers == 0
            if close:
                served.segmenter.close()

    def reload(self) -> dict:
        """Load ``options.path`` again, self-check it, swap it in; the answer says what happened.

        Raises ``ReloadBusy`` while another reload runs. On any failure the old model keeps serving.
        """
        if not self._reloading.acquire(blocking=False):
            raise ReloadBusy()
        try:
            try:
                new = open_checked(self.options, self.current.generation + 1)
            except SegedgeError as exc:
                return self._failed(exc.message)
            except Exception as exc:  # noqa: BLE001 - a runtime's own error on a damaged file: report, keep serving
                return self._failed(f"{self.options.path}: {type(exc).__name__}: {' '.join(str(exc).split())}")
            if not new.check.ok:
                new.segmenter.close()
                return self._failed(f"{self.options.path}: self-check failed: {new.check.note}", new.check)
            with self._lock:
                old, self._current = self._current, new
                if old is not None:
                    old.retired = True
                close_old = old is not None and old.borrowers == 0
            if close_old and old is not None:
                old.segmenter.close()
            self.last_reload = {"ok": True, "at": time.time(), "generation": new.generation,
                                "model": new.segmenter.describe(), "check": new.check.to_json()}
            for listener in list(self.listeners):
                listener()
            return self.last_reload
        finally:
            self._reloading.release()

    def _failed(self, message: str, check: CheckResult | None = None) -> dict:
        self.last_reload = {"ok": False, "at": time.time(), "error": message,
                            "still_serving": self.current.segmenter.describe(),
                            **({"check": check.to_json()} if check else {})}
        return self.last_reload

    def close(self) -> None:
        with self._lock:
            served, self._current = self._current, None
            if served is not None:
                served.retired = True
            close = served is not None and served.borrowers == 0
        if close and served is not None:  # else its last borrower closes it
            served.segmenter.close()
