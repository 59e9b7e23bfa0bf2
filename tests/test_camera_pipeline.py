"""The pipelined camera loop (capture -> queue -> inference -> queue -> writer) with stand-in sources.

No model and no timing: a stand-in segmenter, a capture that counts what it
hands out, and a writer made slow by waiting on an event. What is asserted
holds by construction of the loop: frames read = processed + dropped, no
queue ever holds more than its bound, written frames keep their order, and
every thread is gone after a stop.
"""

from __future__ import annotations

import io
import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from segedge.edge.camera import CameraOptions, is_live, run_camera
from segedge.util.errors import DataError

cv2 = pytest.importorskip("cv2")


class CountingCapture:
    """``total`` numbered frames (None: endless, as a live camera); ``ended`` is set when it runs dry."""

    def __init__(self, total: int | None) -> None:
        self.total, self.reads, self.released = total, 0, 0
        self.ended = threading.Event()

    def read(self):
        if self.total is not None and self.reads >= self.total:
            self.ended.set()
            return False, None
        frame = np.full((6, 8, 3), self.reads % 256, np.uint8)
        self.reads += 1
        return True, frame

    def release(self) -> None:
        self.released += 1


class StandInSegmenter:
    """Masks filled with the frame's first pixel value (so a mask can be traced to its frame)."""

    def __init__(self, writer_gate: threading.Event | None = None, fail_at: int | None = None,
                 interrupt_at: int | None = None) -> None:
        self.manifest = SimpleNamespace(palette=[[0, 0, 0], [200, 0, 0]])
        self.predicted: list[int] = []
        self.overlaid: list[int] = []
        self.writer_gate, self.fail_at, self.interrupt_at = writer_gate, fail_at, interrupt_at

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        value = int(rgb[0, 0, 0])
        if self.fail_at is not None and value == self.fail_at:
            raise DataError("stand-in failure in the inference thread")
        self.predicted.append(value)
        return np.full(rgb.shape[:2], value, np.uint8)

    def overlay(self, rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.5):
        """Runs in the writer (the calling thread): the slow part, held until the gate opens."""
        assert int(mask[0, 0]) == int(rgb[0, 0, 0])  # the mask travelled with its own frame
        if self.interrupt_at is not None and len(self.overlaid) == self.interrupt_at:
            raise KeyboardInterrupt
        if self.writer_gate is not None:
            assert self.writer_gate.wait(30), "the capture never finished"
        self.overlaid.append(int(rgb[0, 0, 0]))
        return Image.fromarray(rgb)

    def fractions(self, mask: np.ndarray) -> dict[str, float]:
        return {"value": float(mask[0, 0])}


def _no_pipeline_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("segedge-") and t.is_alive()]


def _run(segmenter, capture, options: CameraOptions, source: str = "clip.avi"):
    out = io.StringIO()
    summary = run_camera(segmenter, capture, source, options, stderr=io.StringIO(), stdout=out)
    frames = [json.loads(line)["frame"] for line in out.getvalue().splitlines()]
    return summary, frames


def test_a_slow_writer_makes_a_live_source_drop_frames_never_queue_them(tmp_path):
    capture = CountingCapture(total=40)
    segmenter = StandInSegmenter(writer_gate=capture.ended)  # the writer is stuck until all 40 are read
    summary, written = _run(segmenter, capture, CameraOptions(out=tmp_path, overlay=True, json_lines=True,
                                                              queue_size=2, drop=True), source="0")
    assert summary.frames == 40 == capture.reads
    assert summary.processed + summary.dropped == summary.frames
    # at most one frame in the writer, two in each queue and one being segmented were alive when reading ended
    assert summary.dropped >= 40 - (1 + 2 + 1 + 2)
    assert summary.processed == len(written) == len(segmenter.overlaid) == summary.written
    assert written == sorted(written) and len(set(written)) == len(written)  # in order, none twice
    assert 0 < summary.peak_queued <= 2
    assert capture.released >= 1 and _no_pipeline_threads()
    assert "dropped" in summary.line() and f"{summary.dropped} dropped" in summary.line()


def test_a_video_file_waits_for_a_slow_writer_and_loses_nothing(tmp_path):
    capture = CountingCapture(total=25)
    segmenter = StandInSegmenter()
    summary, written = _run(segmenter, capture, CameraOptions(out=tmp_path, every=5, json_lines=True,
                                                              queue_size=1))
    assert (summary.frames, summary.processed, summary.dropped) == (25, 25, 0)
    assert segmenter.predicted == list(range(25))
    assert written == [0, 5, 10, 15, 20] and summary.written == 5
    assert sorted(p.name for p in tmp_path.glob("frame_*.png")) == [f"frame_{i:06d}.png" for i in written]
    assert summary.peak_queued <= 1 and _no_pipeline_threads()


def test_max_frames_counts_frames_read():
    capture = CountingCapture(total=None)
    summary, written = _run(StandInSegmenter(), capture, CameraOptions(max_frames=6, json_lines=True))
    assert capture.reads == summary.frames == 6 and written == list(range(6))


def test_ctrl_c_in_the_writer_stops_an_endless_camera_cleanly(tmp_path):
    capture = CountingCapture(total=None)
    segmenter = StandInSegmenter(interrupt_at=3)
    summary, written = _run(segmenter, capture, CameraOptions(out=tmp_path, json_lines=True,
                                                              overlay=True, drop=True), source="/dev/video0")
    assert summary.interrupted and len(written) == 3 and written == sorted(written)
    # the 4th frame reached the writer, which was stopped while drawing it
    assert summary.processed == 4
    assert summary.processed + summary.dropped == summary.frames == capture.reads
    assert capture.released >= 1 and _no_pipeline_threads()


def test_an_error_in_the_inference_thread_is_raised_after_a_clean_stop():
    capture = CountingCapture(total=None)
    with pytest.raises(DataError, match="stand-in failure"):
        run_camera(StandInSegmenter(fail_at=4), capture, "0", CameraOptions(), stderr=io.StringIO(),
                   stdout=io.StringIO())
    assert capture.released >= 1 and _no_pipeline_threads()


@pytest.mark.parametrize(("source", "live"), [("0", True), ("/dev/video2", True), ("picam", True),
                                              ("rtsp://cam/stream", True), ("clip.mp4", False),
                                              ("videos/0.avi", False)])
def test_live_sources_drop_files_wait(source, live):
    assert is_live(source) is live


class SplitSegmenter(StandInSegmenter):
    """The real Segmenter's three steps, each recording which thread ran it."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[str, set[str]] = {"prepare": set(), "infer": set(), "full_mask": set()}
        self.masks_made: list[int] = []

    def prepare(self, rgb):
        self.threads["prepare"].add(threading.current_thread().name)
        return rgb[:2, :2].copy(), None, (rgb.shape[1], rgb.shape[0])

    def infer(self, pixels):
        self.threads["infer"].add(threading.current_thread().name)
        self.predicted.append(int(pixels[0, 0, 0]))
        return pixels[..., 0]

    def full_mask(self, logits, placement, size):
        self.threads["full_mask"].add(threading.current_thread().name)
        self.masks_made.append(int(logits[0, 0]))
        return np.full((size[1], size[0]), logits[0, 0], np.uint8)


def test_each_step_runs_in_its_own_stage_and_unseen_frames_get_no_full_size_mask(tmp_path):
    segmenter = SplitSegmenter()
    summary, _ = _run(segmenter, CountingCapture(total=12), CameraOptions(out=tmp_path, every=4))
    assert summary.processed == 12 and segmenter.predicted == list(range(12))
    assert segmenter.masks_made == [0, 4, 8] and summary.written == 3  # only the frames saved
    assert segmenter.threads == {"prepare": {"segedge-capture"}, "infer": {"segedge-inference"},
                                 "full_mask": {threading.current_thread().name}}
