"""The predict pipeline: read -> bounded queue -> inference -> bounded queue -> the writer.

``segedge.edge.camera.run_camera`` (camera frames) and
``segedge.edge.runner.predict_files`` (a list of photos) drive it; this
module holds the threads, the queues and the drop policy, so each can be
tested with stand-in sources (tests/test_camera_pipeline.py) and the loops
themselves stay readable.
"""

from __future__ import annotations

import heapq
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

YIELD_NICE = 10  # niceness a pre/post-processing thread takes so that the model's thread runs first


def lower_priority(nice: int = YIELD_NICE) -> bool:
    """Make the calling thread yield the CPU to the process's other threads; False where that is not possible.

    Linux only: there a thread id names one thread for ``setpriority`` (on macOS the same call
    would name a process). Only a pipeline's own reader and writer threads call this, and they end
    with the pipeline, so the caller's threads, and the inference thread started from them, keep
    their priority (a process without CAP_SYS_NICE could not raise a lowered thread back).
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return False
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, max(os.getpriority(os.PRIO_PROCESS, thread), nice))
    except OSError:
        return False
    return True


def frame_to_rgb(cv2: Any, frame: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or grey, or BGRA from some USB cameras) -> the RGB the model was trained on."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class Stages:
    """A segmenter's predict split for the pipeline: prepare (capture thread), infer (inference thread) and
    the full-size mask (writer, only for frames it saves, prints or shows; dequantizing goes with it).
    Anything with only ``predict`` (a stand-in) runs whole in the inference thread."""

    def __init__(self, segmenter: Any) -> None:
        self.segmenter = segmenter
        self.split = all(callable(getattr(segmenter, name, None)) for name in ("prepare", "infer", "full_mask"))
        # dequantizing deferred to the writer (Segmenter.infer_raw / mask_from), where the segmenter has both
        self.raw = self.split and all(callable(getattr(segmenter, name, None)) for name in ("infer_raw", "mask_from"))

    def prepare(self, rgb: np.ndarray) -> Any:
        return self.segmenter.prepare(rgb) if self.split else rgb

    def infer(self, prepared: Any) -> Any:
        if not self.split:
            return self.segmenter.predict(prepared)
        pixels, placement, size = prepared
        return (self.segmenter.infer_raw if self.raw else self.segmenter.infer)(pixels), placement, size

    def mask(self, inferred: Any) -> np.ndarray:
        if not self.split:
            return inferred
        output, placement, size = inferred
        if self.raw:
            return self.segmenter.mask_from(output, placement, size)
        return self.segmenter.full_mask(output, placement, size)


@dataclass
class StreamOptions:
    """What ``Pipeline`` reads of its options (``CameraOptions`` has these fields too)."""

    queue_size: int = 2
    max_frames: int | None = None
    yield_to_model: bool = False  # the reader thread lowers its priority (``lower_priority``)


class ListSource:
    """A list (of photo files) as a capture: ``read()`` gives the items in order, then (False, None).

    Like a video file it is never dropped from: the reader waits for room.
    """

    def __init__(self, items: Iterable[Any]) -> None:
        self._items: Iterator[Any] = iter(items)

    def read(self) -> tuple[bool, Any]:
        for item in self._items:
            return True, item
        return False, None

    def release(self) -> None:
        """Nothing to release; here so a list fits where a capture goes."""


END = object()  # the end of the stream, passed down the queues after the last frame
POLL_SECONDS = 0.1  # longest wait on a queue before a thread checks the stop flag (or Ctrl-C lands)


class Pipeline:
    """capture -> bounded queue -> inference -> bounded queue -> the caller's writer loop.

    Capture (read, BGR->RGB or, for photos, decode + EXIF; resize to the
    model's input) and inference run in their own threads, the writer (full-size
    mask when needed, overlay, files, JSON, window) in the calling thread,
    so reading the next frame, segmenting this one and writing the last
    overlap; OpenCV, numpy, PIL and the runtimes release the GIL for the
    heavy parts. A segmenter with several copies of its model
    (``Segmenter.copies``) gets one inference thread per copy; the writer
    still receives the frames in the order they were read. Each queue holds at
    most ``queue_size`` frames. When a queue is full a live source drops its
    oldest frame (the freshest picture wins, memory stays bounded); a video
    file waits instead, so every frame of it is segmented. Each thread counts
    what it drops, and frames still queued at a stop count as dropped, so
    ``frames = processed + dropped`` always holds.
    """

    def __init__(self, segmenter: Any, capture: Any, cv2: Any, options: Any, drop: bool,
                 load: Callable[[Any], tuple[Any, Any]] | None = None) -> None:
        """``load(item) -> (payload, prepared)`` runs in the reader thread on each item ``capture.read()``
        gives; the default turns an OpenCV frame into (RGB, prepared input). A prepared value of None
        (an unreadable photo) skips inference and reaches the writer as (index, payload, None)."""
        self.stages = Stages(segmenter)
        self.load = load or self._load_frame
        self.capture, self.cv2, self.options, self.drop = capture, cv2, options, drop
        self.frames_in: queue.Queue = queue.Queue(maxsize=options.queue_size)
        self.results: queue.Queue = queue.Queue(maxsize=options.queue_size)
        self.stop = threading.Event()
        self.read = self.capture_dropped = self.inference_dropped = self.peak = 0
        self.interrupted = False
        self.error: BaseException | None = None
        # Several inference threads: each frame gets a ticket as it leaves the first queue, in order;
        # the writer's side puts results back in ticket order (``next_result``) and skips the tickets
        # of results the live policy dropped.
        self.copies = max(1, int(getattr(segmenter, "copies", 1)))
        self._lock = threading.Lock()  # the counters and the skipped tickets; never held while waiting
        self._taking = threading.Lock()  # one inference thread at a time takes a frame and its ticket
        self._tickets = self._next_ticket = 0
        self._running = self.copies
        self._waiting: list[tuple[int, Any]] = []  # results that arrived before an earlier ticket's
        self._skipped: set[int] = set()
        self._ended = False
        self.threads = [self.guarded(self._capture, "segedge-capture")] + [
            self.guarded(self._infer, "segedge-inference" + (f"-{n}" if self.copies > 1 else ""))
            for n in range(self.copies)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def guarded(self, body: Callable[[], None], name: str) -> threading.Thread:
        """A daemon thread (not started) running ``body``; an exception in it stops the pipeline and is
        kept in ``error`` for the caller to raise."""
        return threading.Thread(target=self._guard, args=(body,), name=name, daemon=True)

    def _guard(self, body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which raises it
            if self.error is None:
                self.error = exc
            self.stop.set()

    def _offer(self, target: queue.Queue, item: Any) -> int:
        """Put ``item``, waiting for room (checking the stop flag); 1 when a stop made it drop a frame."""
        while not self.stop.is_set():
            try:
                target.put(item, timeout=POLL_SECONDS)
            except queue.Full:
                continue
            self.peak = max(self.peak, target.qsize())
            return 0
        return 0 if item is END else 1

    def _offer_dropping(self, target: queue.Queue, item: Any) -> int:
        """Put ``item`` without waiting: a full queue loses its oldest frame first."""
        dropped = 0
        while True:
            try:
                target.put_nowait(item)
                self.peak = max(self.peak, target.qsize())
                return dropped
            except queue.Full:
                try:
                    lost = target.get_nowait()
                except queue.Empty:
                    continue
                if lost is END:
                    continue
                dropped += 1
                if target is self.results:
                    with self._lock:
                        self._skipped.add(lost[0])  # the writer stops waiting for this ticket

    def _send(self, target: queue.Queue, item: Any) -> int:
        if self.stop.is_set():
            return 0 if item is END else 1
        if self.drop and item is not END:
            return self._offer_dropping(target, item)
        return self._offer(target, item)

    def _load_frame(self, frame: np.ndarray) -> tuple[np.ndarray, Any]:
        rgb = frame_to_rgb(self.cv2, frame)
        return rgb, self.stages.prepare(rgb)

    def _capture(self) -> None:
        if getattr(self.options, "yield_to_model", False):
            lower_priority()
        limit = self.options.max_frames
        try:
            while not self.stop.is_set() and (limit is None or self.read < limit):
                try:
                    ok, frame = self.capture.read()
                except KeyboardInterrupt:  # a capture library that turns Ctrl-C into an exception here
                    self.interrupted = True
                    break
                if not ok or frame is None:
                    break
                index = self.read
                self.read += 1
                payload, prepared = self.load(frame)
                self.capture_dropped += self._send(self.frames_in, (index, payload, prepared))
        finally:
            for _ in range(self.copies):  # one end for each inference thread
                self._offer(self.frames_in, END)

    def _infer(self) -> None:
        try:
            while True:
                with self._taking:  # taking a frame and its ticket at once keeps tickets in reading order
                    item = self._get(self.frames_in)
                    ticket = self._tickets
                    if item is not END and item is not None:
                        self._tickets += 1
                if item is END or item is None:
                    return
                index, payload, prepared = item
                inferred = None if prepared is None else self.stages.infer(prepared)
                dropped = self._send(self.results, (ticket, (index, payload, inferred)))
                if dropped:
                    with self._lock:
                        self.inference_dropped += dropped
        finally:
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:  # the writer's end comes after every inference thread's last result
                self._offer(self.results, END)

    def _get(self, source: queue.Queue) -> Any:
        """The next item, or None once stopped."""
        while not self.stop.is_set():
            try:
                return source.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
        return None

    def next_result(self) -> Any:
        """The writer's next (index, payload, inferred) in reading order, ``END`` at the end of the stream;
        None once stopped."""
        while True:
            with self._lock:
                while self._next_ticket in self._skipped:
                    self._skipped.discard(self._next_ticket)
                    self._next_ticket += 1
            if self._waiting and (self._waiting[0][0] == self._next_ticket or self._ended):
                self._next_ticket = self._waiting[0][0] + 1
                return heapq.heappop(self._waiting)[1]
            if self._ended:
                return END
            item = self._get(self.results)
            if item is None:
                return None
            if item is END:
                self._ended = True
            else:
                heapq.heappush(self._waiting, item)

    def results_in_order(self) -> Iterator[Any]:
        """Every result (index, payload, inferred) until the stream ends or the pipeline stops."""
        while True:
            item = self.next_result()
            if item is END or item is None:
                return
            yield item

    def close(self, timeout: float = 5.0) -> int:
        """Stop both threads; the frames dropped in all (those still queued included)."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
        left = len(self._waiting)
        self._waiting.clear()
        for pending in (self.frames_in, self.results):
            while True:
                try:
                    left += pending.get_nowait() is not END
                except queue.Empty:
                    break
        return self.capture_dropped + self.inference_dropped + left
