"""Several copies of the model in one pipeline (``load(copies=N)``, ``predict --copies``).

What must hold by construction: a pool hands each copy to one caller at a
time; with several inference threads the writer still gets every frame once,
in reading order, even when a later frame finishes first; a live source's
``frames = processed + dropped`` still holds; the copies give the very masks
one copy gives; and ``predict`` picks one copy per thread only for a video file.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from segedge.cli import app
from segedge.commands.predict import stream_copies
from segedge.edge.camera import CameraOptions, run_camera
from segedge.edge.copies import BackendPool, split_threads
from segedge.edge.predictor import load
from segedge.edge.runner import predict_files
from segedge.edge.sources import resolve_inputs
from segedge.util.errors import ConfigError

cv2 = pytest.importorskip("cv2")
from test_camera_pipeline import CountingCapture  # noqa: E402 - numbered frames; the camera tests' stand-in


class TwoAtOnce:
    """A stand-in with ``copies`` copies whose frame 0 cannot finish before frame 1 has: only two
    inference threads running at once get past it."""

    def __init__(self, copies: int, writer_gate: threading.Event | None = None, hold_first: bool = True) -> None:
        self.copies, self.writer_gate, self.hold_first = copies, writer_gate, hold_first
        self.manifest = SimpleNamespace(palette=[[0, 0, 0], [9, 9, 9]])
        self.second_done = threading.Event()
        self.finished: list[int] = []
        self.inference_threads: set[str] = set()
        self._lock = threading.Lock()

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        value = int(rgb[0, 0, 0])
        self.inference_threads.add(threading.current_thread().name)
        if value == 0 and self.hold_first:
            assert self.second_done.wait(10), "frame 1 never finished while frame 0 was running"
        else:
            time.sleep(0.002 * (value % 3))  # later frames finish in a shuffled order too
        with self._lock:
            self.finished.append(value)
        if value == 1:
            self.second_done.set()
        return np.full(rgb.shape[:2], value, np.uint8)

    def overlay(self, rgb, mask, alpha=0.5):
        assert int(mask[0, 0]) == int(rgb[0, 0, 0])  # each mask travelled with its own frame
        if self.writer_gate is not None:
            assert self.writer_gate.wait(30)
        from PIL import Image

        return Image.fromarray(rgb)

    def fractions(self, mask):
        return {"value": float(mask[0, 0])}


def _camera(segmenter, capture, options, source="clip.avi"):
    out = io.StringIO()
    summary = run_camera(segmenter, capture, source, options, stderr=io.StringIO(), stdout=out)
    return summary, [json.loads(line)["frame"] for line in out.getvalue().splitlines()]


def test_two_inference_threads_hand_the_writer_every_frame_in_reading_order(tmp_path):
    segmenter = TwoAtOnce(copies=2)
    options = CameraOptions(out=tmp_path, json_lines=True, queue_size=2)
    summary, written = _camera(segmenter, CountingCapture(30), options)
    assert segmenter.finished.index(1) < segmenter.finished.index(0)  # frame 1 really finished first
    assert written == list(range(30)) and (summary.frames, summary.processed, summary.dropped) == (30, 30, 0)
    assert segmenter.inference_threads == {"segedge-inference-0", "segedge-inference-1"}
    assert not [t for t in threading.enumerate() if t.name.startswith("segedge-") and t.is_alive()]


def test_a_live_source_with_several_copies_still_counts_every_frame(tmp_path):
    frames = CountingCapture(60)
    # the writer is stuck until all are read; frame 1 may be dropped, so frame 0 does not wait for it
    segmenter = TwoAtOnce(copies=3, writer_gate=frames.ended, hold_first=False)
    summary, written = _camera(segmenter, frames, CameraOptions(out=tmp_path, json_lines=True, queue_size=2,
                                                                 drop=True), source="0")
    assert summary.frames == 60 == frames.reads
    assert summary.processed + summary.dropped == summary.frames and summary.dropped > 0
    assert summary.processed == len(written) and written == sorted(set(written))  # in order, none twice


class Busy:
    """A backend copy that fails if two callers use it at once."""

    def __init__(self, name: str) -> None:
        self.name, self.threads, self.closed, self.calls = name, 1, False, 0
        self.path, self.runtime, self.metadata, self.preprocess = Path(name), "tflite", None, None
        self.input = self.output = SimpleNamespace(shape=(1, 4, 4, 3), quantized=False)
        self._in_use = threading.Lock()

    def run_raw(self, batch):
        assert self._in_use.acquire(blocking=False), f"{self.name} used by two threads at once"
        try:
            self.calls += 1
            time.sleep(0.001)
            return np.full(batch.shape[:1], self.calls)
        finally:
            self._in_use.release()

    def finish(self, raw):
        return raw

    def close(self):
        self.closed = True


def test_a_pool_lends_each_copy_to_one_caller_at_a_time():
    copies = [Busy("a"), Busy("b")]
    pool = BackendPool(copies)
    errors: list[BaseException] = []

    def call_many():
        try:
            for _ in range(25):
                pool.run(np.zeros((1, 4, 4, 3), np.uint8))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and sum(copy.calls for copy in copies) == 100
    assert pool.copies == 2 and pool.threads == 1
    pool.close()
    assert all(copy.closed for copy in copies)


def test_copies_give_the_masks_one_copy_gives(tiny_bundle, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    from PIL import Image

    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (50 + 7 * i, 80, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    sources = resolve_inputs([str(photos)]).sources
    with load(tiny_bundle, threads=1, artifact="int8") as one, \
            load(tiny_bundle, threads=2, artifact="int8", copies=2) as two:
        assert two.copies == 2 and two.backend.threads == 1 and "2 copies x 1 thread" in two.describe()
        assert one.copies == 1 and "copies" not in one.describe()
        alone = predict_files(one, sources, None, keep_masks=True)
        pooled = predict_files(two, sources, None, keep_masks=True)
    assert [item.source.path for item in pooled.images] == [item.source.path for item in alone.images]
    for mine, theirs in zip(pooled.images, alone.images, strict=True):
        np.testing.assert_array_equal(mine.mask, theirs.mask)


@pytest.mark.parametrize(("copies", "threads", "camera", "expected"), [
    (None, 4, "clip.mp4", 4), (None, 4, "0", 1), (None, 4, "/dev/video0", 1), (None, 4, None, 1),
    (3, 4, "0", 3), (2, None, None, 2),
])
def test_predict_picks_one_copy_per_thread_only_for_a_video_file(copies, threads, camera, expected):
    assert stream_copies(copies, threads, camera) == expected


def test_copies_below_one_is_refused_before_the_model_loads(tmp_path):
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "missing"), str(tmp_path), "--out",
                                      str(tmp_path / "o"), "--copies", "0"])
    assert result.exit_code != 0 and "--copies must be at least 1, got 0" in result.output


def test_a_segmenter_with_copies_can_be_called_from_several_threads(tiny_bundle):
    """Each call borrows a copy nobody is using, so threads of the caller's own may share one Segmenter."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (40 + 9 * i, 70, 3), dtype=np.uint8) for i in range(8)]
    with load(tiny_bundle, threads=1, artifact="int8") as one:
        expected = [one.predict(image) for image in images]
    got: dict[int, np.ndarray] = {}
    with load(tiny_bundle, threads=2, artifact="int8", copies=2) as shared:
        def work(indices):
            for index in indices:
                got[index] = shared.predict(images[index])

        threads = [threading.Thread(target=work, args=(range(start, 8, 2),)) for start in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(got) == list(range(8))
    for index, mask in enumerate(expected):
        np.testing.assert_array_equal(got[index], mask)


@pytest.mark.parametrize(("threads", "copies", "expected"), [
    (2, 1, [2]), (2, 2, [1, 1]), (5, 2, [3, 2]), (7, 3, [3, 2, 2]), (4, 4, [1, 1, 1, 1]),
])
def test_copies_share_the_threads_never_more_in_all(threads, copies, expected):
    assert split_threads(threads, copies) == expected
    assert sum(expected) == threads


def test_more_copies_than_threads_is_refused_not_oversubscribed(tiny_bundle):
    with pytest.raises(ConfigError, match=r"--copies 3 needs at least 3 threads.*got 2"):
        load(tiny_bundle, threads=2, artifact="int8", copies=3)


def test_uneven_threads_say_what_each_copy_got(tiny_bundle):
    with load(tiny_bundle, threads=3, artifact="int8", copies=2) as uneven:
        assert [copy.threads for copy in uneven.backend.backends] == [2, 1]
        assert "2 copies on 2+1 threads" in uneven.describe()
