"""``segedge predict --camera``: frames from a camera, a device or a video file.

OpenCV (the ``camera`` extra) is imported only here and only when asked for,
so a Pi that never uses a camera does not need it. A video file goes through
the very same loop as a live camera, which is how the camera path is tested
on a machine without one. Ctrl-C is the normal way to stop a live camera, so
it ends the loop cleanly (capture released, windows closed, a summary) rather
than counting as a failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from segedge.edge.pipeline import END, Pipeline, frame_to_rgb  # noqa: F401 - frame_to_rgb: camera API too
from segedge.edge.postprocess import save_image, save_mask
from segedge.util.errors import DataError, MissingExtraError

FPS_WINDOW = 30  # frames in the rolling FPS average
WINDOW_TITLE = "segedge"


def cv2_module() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise MissingExtraError("cv2 (opencv-python-headless)", "camera") from exc
    return cv2


def open_capture(source: str) -> Any:
    """A camera index ('0'), a device ('/dev/video0'), a video file or a stream URL -> VideoCapture."""
    cv2 = cv2_module()
    target: int | str = int(source) if source.strip().isdigit() else source
    if isinstance(target, str) and "://" not in target and not Path(target).exists():
        raise DataError(f"{source}: no such camera device or video file (a camera index looks like 0)")
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        capture.release()
        raise DataError(
            f"{source}: cannot open this camera or video with OpenCV (busy, no permission, "
            "or a codec this OpenCV build lacks)"
        )
    return capture


PICAM = "picam"  # --camera picam: the Pi's CSI camera through libcamera (picamera2)
PICAM_SIZE = (640, 480)


class PicameraCapture:
    """picamera2 behind the two calls ``run_camera`` makes of an OpenCV ``VideoCapture``: read(), release().

    On Bookworm the CSI camera is driven by libcamera, which OpenCV's
    ``VideoCapture(0)`` usually cannot open. picamera2's documented capture
    API: ``Picamera2()``, ``create_video_configuration(main={"format":
    "RGB888", "size": ...})``, ``configure``, ``start``, ``capture_array()``,
    ``stop``/``close``. libcamera's "RGB888" is stored B, G, R per pixel (the
    picamera2 manual), the order OpenCV frames have, so ``frame_to_rgb``
    treats both alike. Untested on camera hardware in this project.
    """

    def __init__(self, camera: Any, size: tuple[int, int] = PICAM_SIZE) -> None:
        self.camera = camera
        config = camera.create_video_configuration(main={"format": "RGB888", "size": size})
        camera.configure(config)
        camera.start()
        self._open = True

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self._open

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self._open:
            return False, None
        frame = np.asarray(self.camera.capture_array())
        return True, frame[..., :3] if frame.ndim == 3 and frame.shape[2] == 4 else frame

    def release(self) -> None:
        if self._open:
            self._open = False
            self.camera.stop()
            if hasattr(self.camera, "close"):
                self.camera.close()


def open_picamera(size: tuple[int, int] = PICAM_SIZE) -> PicameraCapture:
    """The Pi camera through picamera2, or one line saying how to get picamera2."""
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        error = MissingExtraError("picamera2", "camera")  # exit 6, as any missing library; apt, not pip
        error.message = ("--camera picam needs picamera2, which comes from apt, not pip: sudo apt install "
                         "python3-picamera2, and make the venv with 'python3 -m venv --system-site-packages'")
        raise error from exc
    try:
        camera = Picamera2()
    except (RuntimeError, IndexError, OSError) as exc:
        raise DataError(f"--camera picam: picamera2 found no usable camera ({exc}); check the ribbon cable and "
                        "'rpicam-hello --list-cameras'") from exc
    return PicameraCapture(camera, size)


def open_source(source: str) -> Any:
    """``picam`` -> picamera2; anything else (index, device, file, URL) -> OpenCV as before."""
    return open_picamera() if source.strip().lower() == PICAM else open_capture(source)


def display_problem() -> str | None:
    """Why a window cannot open here, or None when a display exists."""
    if sys.platform.startswith(("win", "darwin")):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "no display (DISPLAY is not set), so --show opens no window; save overlays with --out DIR --every N"


class RollingFps:
    """Frames per second over the last ``window`` frames: steady on a Pi whose speed drifts with heat."""

    def __init__(self, window: int = FPS_WINDOW) -> None:
        self._times: deque[float] = deque(maxlen=window + 1)

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.perf_counter() if now is None else now)

    @property
    def fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


QUEUE_SIZE = 2  # frames waiting between two stages: enough to overlap them, too few to add latency
LIVE_PREFIXES = ("/dev/",)


def is_live(source: str) -> bool:
    """A camera (index, device, picam) or a stream URL: frames come at the sensor's pace and cannot wait."""
    text = source.strip()
    return text.isdigit() or text.lower() == PICAM or text.startswith(LIVE_PREFIXES) or "://" in text


@dataclass
class CameraOptions:
    out: Path | None = None
    every: int = 1
    show: bool = False
    max_frames: int | None = None
    overlay: bool = True
    alpha: float = 0.5
    json_lines: bool = False
    queue_size: int = QUEUE_SIZE
    drop: bool | None = None  # a full queue drops a frame (True) or waits (False); None: drop when live


@dataclass
class CameraSummary:
    """``frames`` read from the source = ``processed`` (segmented and handed to the writer) + ``dropped``."""

    source: str
    frames: int = 0
    processed: int = 0
    dropped: int = 0
    written: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    peak_queued: int = 0  # the most frames ever waiting in one queue (at most queue_size)

    @property
    def fps(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        how = "stopped by Ctrl-C" if self.interrupted else "done"
        saved = f", wrote {self.written} frame(s)" if self.written else ""
        return (f"camera {self.source}: {how}: {self.frames} frame(s) in {self.seconds:.1f} s "
                f"({self.fps:.1f} fps), {self.dropped} dropped{saved}")


class _Window:
    """An OpenCV window that degrades to a message when this OpenCV has no GUI (the headless wheel)."""

    def __init__(self, cv2: Any, log: Callable[[str], None]) -> None:
        self.cv2, self.log, self.active, self.opened = cv2, log, True, False

    def show(self, rgb: np.ndarray) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        if not self.active:
            return True
        try:
            self.cv2.imshow(WINDOW_TITLE, self.cv2.cvtColor(rgb, self.cv2.COLOR_RGB2BGR))
            self.opened = True
            key = self.cv2.waitKey(1) & 0xFF
        except self.cv2.error:
            self.active = False
            self.log("this OpenCV build has no GUI support (opencv-python-headless), so --show opens no "
                     "window; install opencv-python instead, or save overlays with --out DIR --every N")
            return True
        return key not in (ord("q"), 27)

    def close(self) -> None:
        if self.opened:
            try:
                self.cv2.destroyAllWindows()
            except self.cv2.error:
                pass


def _writer(stream: IO[str]) -> Callable[[str], None]:
    def log(message: str) -> None:
        stream.write(message + "\n")
        stream.flush()
    return log


def run_camera(segmenter: Any, capture: Any, source: str, options: CameraOptions,
               stderr: IO[str] | None = None, stdout: IO[str] | None = None) -> CameraSummary:
    """Segment frames until the source ends, ``max_frames`` read, q/Esc in the window, or Ctrl-C.

    Capture, inference and writing run as a pipeline (``segedge.edge.pipeline.Pipeline``); the
    summary line gives frames read, the FPS of frames processed and the
    frames dropped.
    """
    cv2 = cv2_module()
    stderr, stdout = stderr or sys.stderr, stdout or sys.stdout
    log, tty = _writer(stderr), stderr.isatty()
    window = None
    if options.show:
        problem = display_problem()
        if problem:
            log(problem)
        else:
            window = _Window(cv2, log)
    drop = is_live(source) if options.drop is None else options.drop
    pipeline = Pipeline(segmenter, capture, cv2, options, drop)
    summary, fps = CameraSummary(source), RollingFps()
    start = last_status = time.perf_counter()
    pipeline.start()
    try:
        while True:
            item = pipeline.next_result()
            if item is END or item is None:
                break
            index, rgb, inferred = item
            summary.processed += 1
            fps.tick()
            keep = options.out is not None and index % options.every == 0
            showing = window is not None and window.active
            now = time.perf_counter()
            if now - last_status >= (0.5 if tty else 5.0):
                last_status = now
                dropped = pipeline.capture_dropped + pipeline.inference_dropped
                message = f"frame {pipeline.read}  {fps.fps:5.1f} fps  {dropped} dropped"
                stderr.write(f"\r{message}   " if tty else message + "\n")
                stderr.flush()
            if not (keep or showing or (options.json_lines and index % options.every == 0)):
                continue  # segmented, counted; its full-size mask is never looked at, so never made
            mask = pipeline.stages.mask(inferred)
            picture = segmenter.overlay(rgb, mask, options.alpha) if showing or (keep and options.overlay) else None
            if options.out is not None and keep:
                _save_frame(options.out / f"frame_{index:06d}", mask, picture if options.overlay else None, segmenter)
                summary.written += 1
            if options.json_lines and index % options.every == 0:
                stdout.write(json.dumps({"frame": index, "classes": segmenter.fractions(mask)}) + "\n")
                stdout.flush()
            if showing and window is not None and not window.show(np.asarray(picture)):
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.dropped = pipeline.close()
        summary.frames, summary.peak_queued = pipeline.read, pipeline.peak
        summary.interrupted = summary.interrupted or pipeline.interrupted
        capture.release()
        if window is not None:
            window.close()
        summary.seconds = time.perf_counter() - start
        if tty:
            stderr.write("\r")
    if pipeline.error is not None:
        raise pipeline.error
    if summary.frames == 0 and not summary.interrupted:
        raise DataError(f"{source}: no frames could be read (an empty video, or a camera that sends nothing)")
    log(summary.line())
    return summary


def _save_frame(stem: Path, mask: np.ndarray, picture: Any, segmenter: Any) -> None:
    """``frame_000010.png`` (the mask) and, when drawn, ``frame_000010_overlay.jpg``."""
    save_mask(stem.with_name(stem.name + ".png"), mask, segmenter.manifest.palette)
    if picture is not None:
        save_image(stem.with_name(stem.name + "_overlay.jpg"), picture)
