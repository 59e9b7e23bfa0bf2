"""``--camera picam``: the picamera2 adapter against picamera2's documented capture API (a stand-in module).

picamera2 manual (Raspberry Pi, "The Picamera2 Library"): ``Picamera2()``;
``create_video_configuration(main={"format": "RGB888", "size": (w, h)})``;
``configure(config)``; ``start()``; ``capture_array()`` returns an HxWx3
uint8 array; ``stop()``; ``close()``. Its "RGB888" format is stored
B, G, R per pixel. Untested on camera hardware here.
"""

from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest
from typer.testing import CliRunner

from segedge.cli import app
from segedge.edge.camera import PICAM_SIZE, CameraOptions, PicameraCapture, open_source, run_camera
from segedge.util.errors import MissingExtraError

cv2 = pytest.importorskip("cv2")

RED_AS_RGB888 = np.zeros((48, 64, 3), np.uint8)
RED_AS_RGB888[..., 2] = 255  # libcamera RGB888: B, G, R in memory -> pure red has its 255 last


class StandInPicamera2:
    """Records the calls picamera2's API receives; every capture is the same red frame."""

    instances: list[StandInPicamera2] = []

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.started = False
        StandInPicamera2.instances.append(self)

    def create_video_configuration(self, main=None, **kwargs):
        self.calls.append(("create_video_configuration", main))
        return {"main": dict(main or {}), "use_case": "video"}

    def create_preview_configuration(self, main=None, **kwargs):  # the other documented helper; unused
        self.calls.append(("create_preview_configuration", main))
        return {"main": dict(main or {}), "use_case": "preview"}

    def configure(self, config):
        self.calls.append(("configure", config))

    def start(self):
        self.calls.append(("start",))
        self.started = True

    def capture_array(self, name="main"):
        assert self.started, "capture_array before start()"
        self.calls.append(("capture_array", name))
        return RED_AS_RGB888.copy()

    def stop(self):
        self.calls.append(("stop",))
        self.started = False

    def close(self):
        self.calls.append(("close",))


@pytest.fixture
def picamera2(monkeypatch):
    StandInPicamera2.instances.clear()
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInPicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return module


class RecordingSegmenter:
    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, rgb):
        self.seen.append(rgb)
        return np.zeros(rgb.shape[:2], np.uint8)


def test_picam_configures_rgb888_starts_and_stops(picamera2):
    capture = open_source("picam")
    assert isinstance(capture, PicameraCapture)
    camera = StandInPicamera2.instances[-1]
    name, main = camera.calls[0]
    assert name == "create_video_configuration" and main == {"format": "RGB888", "size": PICAM_SIZE}
    assert camera.calls[1] == ("configure", {"main": main, "use_case": "video"}) and camera.calls[2] == ("start",)
    ok, frame = capture.read()
    assert ok and frame.shape == RED_AS_RGB888.shape
    capture.release()
    capture.release()  # predict releases again in its finally: stop/close happen once
    assert [c[0] for c in camera.calls[-2:]] == ["stop", "close"]
    assert sum(c[0] == "stop" for c in camera.calls) == 1
    assert capture.read() == (False, None)


def test_picam_frames_reach_the_model_as_rgb(picamera2):
    segmenter = RecordingSegmenter()
    # drop=False: a live source would drop frames the stand-in sends faster than the loop takes them
    summary = run_camera(segmenter, open_source("picam"), "picam", CameraOptions(max_frames=3, drop=False),
                         stderr=io.StringIO(), stdout=io.StringIO())
    assert summary.frames == 3 and len(segmenter.seen) == 3
    for rgb in segmenter.seen:
        assert rgb.shape == (48, 64, 3)
        assert (rgb[..., 0] == 255).all() and (rgb[..., 1:] == 0).all()  # red, in the model's R, G, B order
    assert StandInPicamera2.instances[-1].calls[-1] == ("close",)  # run_camera released it


def test_picam_without_picamera2_names_the_apt_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError) as caught:
        open_source("picam")
    assert caught.value.exit_code == 6
    assert "python3-picamera2" in caught.value.message and "--system-site-packages" in caught.value.message


def test_cli_picam_without_picamera2_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "bundle"), "--camera", "picam"])
    assert result.exit_code == 6, result.output
    assert [line for line in result.output.splitlines() if line.strip()][-1].startswith("error: --camera picam")


def test_other_sources_still_go_through_opencv(tmp_path):
    from segedge.util.errors import DataError

    with pytest.raises(DataError, match="no such camera device or video file"):
        open_source(str(tmp_path / "missing.avi"))

