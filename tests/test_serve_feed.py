"""The camera feed behind the page, in process: unplugged cameras, back-off, reloads, and drawing only when watched."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from segedge.util.errors import DataError

pytest.importorskip("cv2")
pytest.importorskip("prometheus_client", reason="segedge serve needs the serve extra: pip install 'segedge[serve]'")

from segedge.serve.holder import LoadOptions, ModelHolder  # noqa: E402
from segedge.serve.live import FeedOptions, LiveFeed  # noqa: E402
from segedge.serve.stats import Stats  # noqa: E402


class Frames:
    """A camera that sends ``count`` BGR frames, then nothing (unplugged)."""

    def __init__(self, count: int) -> None:
        self.left, self.released = count, False

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.full((48, 64, 3), 40 + self.left % 200, np.uint8)

    def release(self) -> None:
        self.released = True


def wait(predicate, feed: LiveFeed, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out; the feed is {feed.status()}")


@pytest.fixture
def holder(micro_bundle):
    held = ModelHolder(LoadOptions(Path(micro_bundle), artifact="fp32", threads=1))
    held.start()
    yield held
    held.close()


def test_an_unplugged_camera_is_retried_with_a_doubling_back_off_until_it_sends(holder):
    attempts: list[float] = []
    captures: list[Frames] = []

    def opener(source: str):
        attempts.append(time.monotonic())
        if len(attempts) == 2:
            raise RuntimeError("driver crashed")  # not segedge's error: still retried, the feed goes on
        if len(attempts) <= 3:
            raise DataError(f"{source}: cannot open this camera")
        captures.append(Frames(5))
        return captures[-1]

    feed = LiveFeed("0", holder, Stats(), FeedOptions(backoff=0.1, max_backoff=0.3), opener=opener)
    feed.start()
    try:
        wait(lambda: feed.state == "unavailable", feed)
        assert "cannot open this camera" in feed.detail and "reconnecting in" in feed.detail
        wait(lambda: feed.frames + feed.dropped >= 5, feed)  # a live camera: read = segmented + dropped
        wait(lambda: feed.state == "ended", feed)  # the camera stopped sending: shown, then opened again
        assert "stopped sending" in feed.detail
        wait(lambda: len(captures) >= 2, feed)
    finally:
        feed.stop()
    gaps = np.diff(attempts[:4])
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.29 and gaps[2] < 1.0, gaps  # 0.1, 0.2, 0.3 (cap)
    assert all(capture.released for capture in captures[:-1])
    assert feed.state == "stopped"


def test_overlays_are_drawn_only_while_someone_watches(holder):
    feed = LiveFeed("0", holder, Stats(), FeedOptions(backoff=0.05, max_fps=1000), opener=lambda s: Frames(10_000))
    feed.start()
    try:
        wait(lambda: feed.frames > 20, feed)
        assert feed.latest is None  # segmented and counted, never drawn
        feed.watch()
        wait(lambda: feed.latest is not None, feed)
        frame = feed.latest
        assert frame.jpeg[:2] == b"\xff\xd8" and frame.mask.shape == (48, 64)
        assert frame.shares and abs(sum(frame.shares.values()) - 1.0) < 1e-4
    finally:
        feed.stop()


def test_a_reload_restarts_the_feed_on_the_new_model(holder):
    feed = LiveFeed("0", holder, Stats(), FeedOptions(backoff=0.05), opener=lambda s: Frames(10_000))
    feed.start()
    try:
        wait(lambda: feed.frames > 5, feed)
        first = holder.current
        answer = holder.reload()
        assert answer["ok"] and holder.current.generation == 2
        wait(lambda: feed.sessions >= 2, feed)  # at once, not after a back-off
        wait(lambda: first.borrowers == 0, feed)
        assert first.retired  # closed by its last borrower, the old session
        count = feed.frames
        wait(lambda: feed.frames > count + 5, feed)
    finally:
        feed.stop()
