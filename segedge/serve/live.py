"""The camera behind the page: ``segedge predict --camera``'s pipeline, kept running for days.

One thread opens the source (``segedge.edge.camera.open_source``: an index, a device, ``picam`` or
a video file), runs ``segedge.edge.pipeline.Pipeline`` on it with the served model, and keeps the
newest overlay as a JPEG for the MJPEG stream. A camera unplugged or a video that ends is a state
(``ended``, ``unavailable``, ``error``) shown on the page and in /healthz, and the source is opened
again after a back-off that doubles up to ``max_backoff`` and starts again at ``backoff`` once frames
flow. Overlays are drawn at most ``max_fps`` times a second, and only while someone looks (a stream
viewer, the page's polling or a snapshot in the last ``WATCH_S`` seconds), plus the last frame
before a source ends, which stays on the page and in snapshots: every frame is still
segmented and counted, so the frames per second is the model's pace, and a server nobody watches
spends its cores on the model and its uploads, as ``predict --camera`` makes no mask it does not show.
"""

from __future__ import annotations

import io
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from segedge.edge.camera import RollingFps, cv2_module, is_live, open_source
from segedge.edge.pipeline import END, Pipeline, StreamOptions
from segedge.serve.holder import ModelHolder
from segedge.serve.stats import Stats
from segedge.serve.timed import TimedCapture, TimedSegmenter
from segedge.util.errors import SegedgeError

JPEG_QUALITY = 80
KEPT_FRAMES = 8  # drawn frames kept, so a snapshot's overlay and mask come from the same frame
WATCH_S = 3.0  # overlays are drawn for this long after the last look


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


@dataclass
class Frame:
    """The newest drawn frame: overlay JPEG, its mask (for snapshots) and each class's share."""

    seq: int
    index: int
    jpeg: bytes
    mask: np.ndarray
    shares: dict[str, float]
    at: float = field(default_factory=time.time)


@dataclass
class FeedOptions:
    max_fps: float = 15.0  # overlays drawn per second at most
    alpha: float = 0.5
    pace: bool = True  # a video file plays at its own frame rate
    backoff: float = 1.0
    max_backoff: float = 30.0
    queue_size: int = 2


class LiveFeed:
    def __init__(self, source: str, holder: ModelHolder, stats: Stats, options: FeedOptions | None = None,
                 opener: Callable[[str], Any] = open_source) -> None:
        self.source, self.holder, self.stats = source, holder, stats
        self.options = options or FeedOptions()
        self.opener = opener
        self.state, self.detail = "starting", "opening the camera"
        self.latest: Frame | None = None
        self.recent: deque[Frame] = deque(maxlen=KEPT_FRAMES)
        self.frames = self.dropped = self.sessions = 0
        self.fps = RollingFps()
        self.reconnect_at: float | None = None
        self.last_session: dict | None = None  # frames and seconds of the last source opened, start to close
        self._stop, self._restart = threading.Event(), threading.Event()
        self._pipeline: Pipeline | None = None
        self._seq = 0
        self._watched = float("-inf")
        self._thread = threading.Thread(target=self._run, name="segedge-serve-camera", daemon=True)
        holder.listeners.append(self.restart)

    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        """Stop without waiting (a signal handler): the pipeline ends and the source is not opened again."""
        self._stop.set()
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.stop.set()

    def stop(self, timeout: float = 1.5) -> None:
        self.halt()
        self._thread.join(timeout)
        self._set("stopped", "the server is stopping")

    def watch(self) -> None:
        """Someone is looking (the stream, the page, a snapshot): draw overlays for the next ``WATCH_S`` s."""
        self._watched = time.monotonic()

    @property
    def watched(self) -> bool:
        return time.monotonic() - self._watched < WATCH_S

    def restart(self) -> None:
        """A new model was swapped in: end the current pipeline now; the loop starts one on the new model."""
        self._restart.set()
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.stop.set()

    def status(self) -> dict:
        return {"source": self.source, "state": self.state, "detail": self.detail, "frames": self.frames,
                "dropped": self.dropped, "fps": round(self.fps.fps, 2), "sessions": self.sessions,
                "reconnect_in_s": (round(max(0.0, self.reconnect_at - time.time()), 1)
                                   if self.reconnect_at is not None else None),
                "last_session": self.last_session,
                "frame_index": self.latest.index if self.latest else None,
                "shares": self.latest.shares if self.latest else {}}

    def _set(self, state: str, detail: str) -> None:
        self.state, self.detail = state, detail
        self.stats.camera_up.set(1 if state == "streaming" else 0)

    def _run(self) -> None:
        delay = self.options.backoff
        while not self._stop.is_set():
            try:
                capture = self.opener(self.source)
            except Exception as exc:  # noqa: BLE001 - SegedgeError says why; a driver's own error must not end the feed
                self._set("unavailable", exc.message if isinstance(exc, SegedgeError) else one_line(exc))
                self._wait(delay)
                delay = min(2 * delay, self.options.max_backoff)
                continue
            self.sessions += 1
            self._restart.clear()
            try:
                got = self._session(capture)
            except SegedgeError as exc:
                got = 0
                self._set("error", exc.message)
            except Exception as exc:  # noqa: BLE001 - the feed must outlive a camera driver's exception
                got = 0
                self._set("error", one_line(exc))
            finally:
                try:
                    capture.release()
                except Exception:  # noqa: BLE001 - an unplugged camera may fail to close; it is reopened anyway
                    pass
            if self._stop.is_set():
                break
            if self._restart.is_set():  # a reload: straight back with the new model
                delay = self.options.backoff
                continue
            if got:
                delay = self.options.backoff
            if self.state == "streaming":
                self._set("ended", "the video ended or the camera stopped sending frames")
            self._wait(delay)
            if not got:
                delay = min(2 * delay, self.options.max_backoff)

    def _wait(self, seconds: float) -> None:
        self.reconnect_at = time.time() + seconds
        self.detail = f"{self.detail.split('; reconnecting')[0]}; reconnecting in {seconds:g} s"
        self._stop.wait(seconds)
        self.reconnect_at = None

    def _session(self, capture: Any) -> int:
        """Frames segmented from one opened source, until it ends, a reload, or the server stops."""
        cv2 = cv2_module()
        live = is_live(self.source)
        pace = 0.0
        if self.options.pace and not live and hasattr(capture, "get"):
            pace = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        with self.holder.use() as served:
            segmenter = served.segmenter
            timed = TimedSegmenter(segmenter, self.stats)
            pipeline = Pipeline(timed, TimedCapture(capture, self.stats, pace), cv2,
                                StreamOptions(queue_size=self.options.queue_size), drop=live)
            self._pipeline = pipeline
            got, counted_drops, last_drawn = 0, 0, 0.0
            last = drawn = None  # the newest frame segmented, and the newest drawn
            started = time.perf_counter()  # as predict --camera's summary times its loop: start to close
            pipeline.start()
            try:
                while not (self._stop.is_set() or self._restart.is_set()):
                    item = pipeline.next_result()
                    if item is END or item is None:
                        break
                    index, rgb, inferred = item
                    last = item
                    got += 1
                    if got == 1:  # before the count: whoever sees a frame counted sees "streaming" too
                        self._set("streaming", "frames flowing")
                    self.frames += 1
                    self.stats.frames.inc()
                    self.fps.tick()
                    self.stats.fps.set(self.fps.fps)
                    drops = pipeline.capture_dropped + pipeline.inference_dropped
                    if drops > counted_drops:
                        self._count_drops(drops - counted_drops)
                        counted_drops = drops
                    now = time.perf_counter()
                    if now - last_drawn >= 1.0 / self.options.max_fps and self.watched:
                        last_drawn, drawn = now, item
                        self._draw(segmenter, pipeline.stages.mask(inferred), rgb, index)
                if last is not None and last is not drawn and not self._stop.is_set():
                    # the source ended: its last frame stays on the page and in snapshots (one overlay)
                    self._draw(segmenter, pipeline.stages.mask(last[2]), last[1], last[0])
            finally:
                left = pipeline.close() - counted_drops
                self._pipeline = None
                if left > 0:
                    self._count_drops(left)
                seconds = time.perf_counter() - started
                self.last_session = {"frames": got, "dropped": counted_drops + max(left, 0),
                                     "seconds": round(seconds, 3), "fps": round(got / seconds, 2) if seconds else 0.0}
            if pipeline.error is not None:
                raise pipeline.error
            return got

    def _count_drops(self, count: int) -> None:
        self.dropped += count
        self.stats.dropped.inc(count)

    def _draw(self, segmenter: Any, mask: np.ndarray, rgb: np.ndarray, index: int) -> None:
        start = time.perf_counter()
        picture = segmenter.overlay(Image.fromarray(rgb), mask, self.options.alpha)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        shares = segmenter.fractions(mask)
        self.stats.observe("camera", "encode", time.perf_counter() - start)
        self._seq += 1
        frame = Frame(self._seq, index, buffer.getvalue(), mask, shares)
        self.recent.append(frame)
        self.latest = frame

    def drawn(self, seq: int) -> Frame | None:
        """A recently drawn frame by its ``seq`` (the snapshot's second picture), None once it is gone."""
        return next((frame for frame in list(self.recent) if frame.seq == seq), None)
