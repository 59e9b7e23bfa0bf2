"""``segedge predict --camera`` on a short generated video: the same loop a live camera runs."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from videos import write_video

from segedge.cli import app
from segedge.contract.manifest import load_manifest
from segedge.data import read_mask
from segedge.edge.camera import CameraOptions, RollingFps, cv2_module, frame_to_rgb, run_camera
from segedge.edge.predictor import load
from segedge.util.errors import DataError, MissingExtraError

cv2 = pytest.importorskip("cv2")


def artifact_name(bundle: Path, runtime: str, precision: str) -> str:
    for name, info in load_manifest(bundle).artifacts.items():
        if (info.runtime, info.precision) == (runtime, precision):
            return name
    raise LookupError(f"{bundle} has no {runtime} {precision} artifact")


@pytest.mark.parametrize(("runtime", "precision"), [("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32")])
def test_video_file_writes_every_nth_frame(tiny_bundle, tmp_path, monkeypatch, runtime, precision):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = write_video(tmp_path / "clip.avi")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "predict", str(tiny_bundle), "--camera", str(video), "--out", str(out), "--every", "3", "--show",
        "--format", artifact_name(tiny_bundle, runtime, precision),
    ])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        ".segedge.json", "frame_000000.png", "frame_000000_overlay.jpg", "frame_000003.png",
        "frame_000003_overlay.jpg", "frame_000006.png", "frame_000006_overlay.jpg",
    ]
    assert read_mask(out / "frame_000003.png").shape == (72, 96)
    assert "no display" in result.output  # --show without a display says so and carries on
    assert "7 frame(s)" in result.output and "fps" in result.output and "wrote 3 frame(s)" in result.output


def test_max_frames_and_json_lines(tiny_bundle, tmp_path):
    video = write_video(tmp_path / "clip.avi")
    result = CliRunner().invoke(app, [
        "predict", str(tiny_bundle), "--camera", str(video), "--max-frames", "4", "--every", "2", "--json",
        "--threads", "1",
    ])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert [json.loads(line)["frame"] for line in lines] == [0, 2]
    assert "4 frame(s)" in result.output


class FakeCapture:
    """Two frames, then Ctrl-C, as a person stopping a live camera would."""

    def __init__(self) -> None:
        self.reads, self.released = 0, False

    def read(self):
        self.reads += 1
        if self.reads > 2:
            raise KeyboardInterrupt
        return True, np.zeros((40, 50, 3), dtype=np.uint8)

    def release(self) -> None:
        self.released = True


def test_ctrl_c_stops_cleanly_with_a_summary(tiny_bundle, tmp_path):
    capture, err = FakeCapture(), io.StringIO()
    with load(tiny_bundle, threads=1) as seg:
        summary = run_camera(seg, capture, "0", CameraOptions(out=tmp_path / "out"), stderr=err, stdout=io.StringIO())
    assert summary.interrupted and summary.frames == 2 and capture.released
    assert "stopped by Ctrl-C: 2 frame(s)" in err.getvalue()
    assert (tmp_path / "out" / "frame_000001_overlay.jpg").is_file()


def test_empty_source_and_bad_sources(tiny_bundle, tmp_path):
    class Empty(FakeCapture):
        def read(self):
            return False, None

    with load(tiny_bundle, threads=1) as seg, pytest.raises(DataError, match="no frames"):
        run_camera(seg, Empty(), "clip.avi", CameraOptions(), stderr=io.StringIO())
    result = CliRunner().invoke(app, ["predict", str(tiny_bundle), "--camera", str(tmp_path / "missing.mp4")])
    assert result.exit_code == 3 and "missing.mp4: no such camera device or video file" in result.output
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    result = CliRunner().invoke(app, ["predict", str(tiny_bundle), "--camera", str(tmp_path / "junk.avi")])
    assert result.exit_code == 3 and "junk.avi" in result.output


def test_missing_opencv_names_the_camera_extra(tiny_bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingExtraError) as err:
        cv2_module()
    assert err.value.extra == "camera" and 'pip install "segedge[camera]"' in err.value.message
    result = CliRunner().invoke(app, ["predict", str(tiny_bundle), "--camera", "0"])
    assert result.exit_code == MissingExtraError.exit_code and "opencv" in result.output


def test_rolling_fps():
    fps = RollingFps(window=4)
    for t in range(10):
        fps.tick(t * 0.25)
    assert fps.fps == pytest.approx(4.0)


def test_frames_become_rgb_whatever_the_camera_sends():
    bgr = np.zeros((2, 2, 3), dtype=np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    assert tuple(frame_to_rgb(cv2, bgr)[0, 0]) == (0, 0, 255)
    assert frame_to_rgb(cv2, np.full((2, 2), 7, dtype=np.uint8)).shape == (2, 2, 3)
    assert tuple(frame_to_rgb(cv2, np.dstack([bgr, np.full((2, 2), 9, np.uint8)]))[0, 0]) == (0, 0, 255)


def test_a_camera_run_lets_onnxruntime_idle_threads_sleep(tiny_bundle, tmp_path, monkeypatch):
    """In the camera loop the capture and writer threads need the cores onnxruntime's pool would spin on."""
    import onnxruntime as ort

    import segedge.contract.runtime as runtime

    real, spins = runtime.ort_session_options, []

    def recording(module, threads, spin=True):
        spins.append(spin)
        return real(module, threads, spin)

    monkeypatch.setattr(runtime, "ort_session_options", recording)
    video = write_video(tmp_path / "clip.avi")
    result = CliRunner().invoke(app, ["predict", str(tiny_bundle), "--camera", str(video), "--max-frames", "2",
                                      "--threads", "2", "--format", artifact_name(tiny_bundle, "onnx", "fp32")])
    assert result.exit_code == 0, result.output
    assert spins == [False, False]  # a video file: one session per thread (--copies), none spinning
    assert real(ort, 2, spin=False).get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(RuntimeError, match="allow_spinning"):  # left unset by default: onnxruntime spins
        real(ort, 2).get_session_config_entry("session.intra_op.allow_spinning")
