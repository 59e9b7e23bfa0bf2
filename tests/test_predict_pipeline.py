"""``predict_files`` over several photos runs as a pipeline (reader -> inference -> writer threads).

What must hold: the same bytes as the one-after-another path, outputs in input
order, a bad photo still one failure with the rest written, worker errors and
Ctrl-C ending both threads. The expectations come from elsewhere: masks from
``Segmenter.predict(path)`` one photo at a time, upright sizes from how each
test photo was made.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segedge.data import read_mask
from segedge.edge.pipeline import YIELD_NICE
from segedge.edge.predictor import load
from segedge.edge.runner import predict_files
from segedge.edge.sources import resolve_inputs
from segedge.util.errors import DataError, ModelError

ORIENTATION = 0x0112  # EXIF tag; 6: a viewer turns the stored pixels 90 degrees clockwise
WORKERS = ("segedge-capture", "segedge-inference", "segedge-writer")


def scene(size: tuple[int, int], seed: int) -> np.ndarray:
    """Smooth blobs plus noise: boundaries everywhere, the mask step's hard case."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([np.sin(x / (7 + c) + rng.uniform(0, 6)) * np.cos(y / (9 + c)) for c in range(3)], axis=-1)
    noise = rng.integers(-30, 30, (size[1], size[0], 3))
    return np.clip(127 + 100 * base + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def varied(tmp_path) -> tuple[Path, dict[str, tuple[int, int]]]:
    """Photos of many kinds and sizes, a broken JPEG among them; name -> upright (width, height)."""
    root = tmp_path / "photos"
    root.mkdir()
    upright: dict[str, tuple[int, int]] = {}
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(scene((120, 70), 1)).save(root / "a_rotated.jpg", quality=92, exif=exif)
    upright["a_rotated"] = (70, 120)  # stored 120x70, shown turned
    rgba = np.dstack([scene((90, 61), 2), np.linspace(0, 255, 90 * 61).reshape(61, 90).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "b_alpha.png")
    upright["b_alpha"] = (90, 61)
    Image.fromarray(scene((33, 47), 3)[..., 0], "L").save(root / "c_grey.png")
    upright["c_grey"] = (33, 47)
    (root / "d_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.fromarray(scene((500, 375), 4)).save(root / "e_photo.jpg", quality=90)
    upright["e_photo"] = (500, 375)
    Image.fromarray(scene((64, 64), 5)).convert("P", palette=Image.ADAPTIVE).save(root / "f_palette.png")
    upright["f_palette"] = (64, 64)
    for i in range(6):  # enough photos for both queues to fill
        Image.fromarray(scene((150 + 13 * i, 100 + 7 * i), 10 + i)).save(root / f"g_{i}.jpg", quality=85)
        upright[f"g_{i}"] = (150 + 13 * i, 100 + 7 * i)
    return root, upright


class Recording:
    """A real segmenter whose prepare/infer/full_mask note the thread they ran in (and can fail on cue)."""

    def __init__(self, segmenter, fail_infer_at: int | None = None) -> None:
        self.segmenter, self.fail_infer_at = segmenter, fail_infer_at
        self.threads: dict[str, set[str]] = {"prepare": set(), "infer": set(), "full_mask": set()}
        self.infers = 0

    def __getattr__(self, name: str):
        return getattr(self.segmenter, name)

    def prepare(self, image):
        self.threads["prepare"].add(threading.current_thread().name)
        return self.segmenter.prepare(image)

    def infer(self, pixels):
        return self._infer(pixels, self.segmenter.infer)

    def infer_raw(self, pixels):
        return self._infer(pixels, self.segmenter.infer_raw)

    def _infer(self, pixels, step):
        self.threads["infer"].add(threading.current_thread().name)
        self.infers += 1
        if self.infers == self.fail_infer_at:
            raise ModelError("the runtime failed on cue")
        return step(pixels)

    def full_mask(self, *args):
        self.threads["full_mask"].add(threading.current_thread().name)
        return self.segmenter.full_mask(*args)

    def mask_from(self, *args):  # the full-size mask from the raw output: what the writer calls
        self.threads["full_mask"].add(threading.current_thread().name)
        return self.segmenter.mask_from(*args)


def no_workers_left() -> bool:
    return not any(t.name in WORKERS and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("artifact", ["int8", "onnx-int8"])
def test_pipeline_writes_the_same_bytes_in_order_as_one_after_another(tiny_bundle, varied, tmp_path, artifact):
    root, upright = varied
    sources = resolve_inputs([str(root)]).sources
    with load(tiny_bundle, threads=1, artifact=artifact) as segmenter:
        recording = Recording(segmenter)
        piped = predict_files(recording, sources, tmp_path / "piped", keep_masks=True)
        plain = predict_files(segmenter, sources, tmp_path / "plain", keep_masks=True, pipelined=False)
        alone = {source.stem.name: segmenter.predict(source.path) for source in sources
                 if source.stem.name in upright}
    # the work really ran in three threads: reader, inference, writer
    assert recording.threads == {"prepare": {"segedge-capture"}, "infer": {"segedge-inference"},
                                 "full_mask": {"segedge-writer"}}
    expected_order = sorted(upright)
    assert [item.source.stem.name for item in piped.images] == expected_order
    assert [item.source.stem.name for item in plain.images] == expected_order
    assert [path.name for path, _ in piped.failed] == ["d_broken.jpg"] == [path.name for path, _ in plain.failed]
    assert piped.failed[0][1] == plain.failed[0][1] and "d_broken.jpg" in piped.failed[0][1]
    for item in piped.images:
        name = item.source.stem.name
        assert item.size == upright[name]
        assert item.mask.shape == (upright[name][1], upright[name][0])
        np.testing.assert_array_equal(item.mask, alone[name], err_msg=name)
        np.testing.assert_array_equal(read_mask(item.mask_path), alone[name], err_msg=name)
        for kind in ("mask_path", "overlay_path"):
            mine, theirs = getattr(item, kind), tmp_path / "plain" / getattr(item, kind).name
            assert mine.read_bytes() == theirs.read_bytes(), f"{name}: {kind} differs"
    assert [item.to_json()["classes"] for item in piped.images] == [item.to_json()["classes"] for item in plain.images]
    names = {folder: sorted(p.name for p in (tmp_path / folder).iterdir()) for folder in ("piped", "plain")}
    assert names["piped"] == names["plain"] and len(names["piped"]) == 2 * len(upright)
    assert no_workers_left()


def test_one_photo_runs_without_threads(tiny_bundle, varied, tmp_path, monkeypatch):
    root, _ = varied
    started = []
    start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: (started.append(thread.name), start(thread))[1])
    with load(tiny_bundle, threads=1, artifact="int8") as segmenter:
        result = predict_files(segmenter, resolve_inputs([str(root / "e_photo.jpg")]).sources, tmp_path / "one",
                               single=True)
        expected = segmenter.predict(root / "e_photo.jpg")
    assert [item.size for item in result.images] == [(500, 375)]
    np.testing.assert_array_equal(read_mask(tmp_path / "one" / "e_photo.png"), expected)
    assert not [name for name in started if name in WORKERS]


def test_a_single_unreadable_photo_is_an_error_straight_away(tiny_bundle, varied, tmp_path):
    root, _ = varied
    with load(tiny_bundle, threads=1, artifact="int8") as segmenter, pytest.raises(DataError, match="d_broken.jpg"):
        predict_files(segmenter, resolve_inputs([str(root / "d_broken.jpg")]).sources, tmp_path / "one", single=True)


def test_a_runtime_error_in_the_inference_thread_is_raised_in_the_caller(tiny_bundle, varied, tmp_path):
    root, _ = varied
    with load(tiny_bundle, threads=1, artifact="int8") as segmenter:
        with pytest.raises(ModelError, match="failed on cue"):
            predict_files(Recording(segmenter, fail_infer_at=3), resolve_inputs([str(root)]).sources, tmp_path / "o")
    assert no_workers_left()


def test_ctrl_c_in_the_writer_stops_both_threads_and_propagates(tiny_bundle, varied, tmp_path):
    root, _ = varied
    sources = resolve_inputs([str(root)]).sources
    written = []

    class Interrupting(Recording):
        def fractions(self, mask, counts=None):
            written.append(mask.shape)
            if len(written) == 2:
                raise KeyboardInterrupt
            return self.segmenter.fractions(mask, counts)

    with load(tiny_bundle, threads=1, artifact="int8") as segmenter:
        with pytest.raises(KeyboardInterrupt):
            predict_files(Interrupting(segmenter), sources, tmp_path / "o")
    assert len(written) == 2 and no_workers_left()
    assert len(list((tmp_path / "o").glob("*.png"))) == 1  # the first photo's mask; nothing after the stop


def test_predict_cli_ctrl_c_keeps_the_finished_masks_and_says_so(tiny_bundle, varied, tmp_path, monkeypatch):
    """Exit 130 with a line that tells the truth: the masks written before Ctrl-C stay, whole, and the
    folder's marker owns them (a later --overwrite may replace them); no worker thread is left."""
    import json

    from typer.testing import CliRunner

    from segedge.cli import app
    from segedge.edge.predictor import Segmenter
    from segedge.util.errors import EXIT_INTERRUPTED

    root, upright = varied
    calls = []
    real = Segmenter.fractions

    def fractions(self, mask, counts=None):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, mask, counts)

    monkeypatch.setattr(Segmenter, "fractions", fractions)
    out = tmp_path / "masks"
    result = CliRunner().invoke(app, ["predict", str(tiny_bundle), str(root), "--out", str(out), "--format", "int8"])
    assert result.exit_code == EXIT_INTERRUPTED, result.output
    assert f"interrupted; the masks finished before it are kept in {out} (none is half-written)" in result.output
    assert "discarded" not in result.output
    masks = sorted(out.glob("*.png"))
    masks = [m for m in masks if not m.stem.endswith("_overlay")]
    assert len(masks) == 2 and no_workers_left()
    for mask in masks:
        assert Image.open(mask).size == upright[mask.stem]  # complete files, each at its photo's upright size
    owned = set(json.loads((out / ".segedge.json").read_text())["files"])
    assert {m.name for m in masks} <= owned
    assert not [p for p in out.iterdir() if p.name.startswith(".segedge-tmp")]


@pytest.mark.parametrize("artifact", ["int8", "onnx-int8"])
def test_the_inference_stage_hands_on_the_raw_output_and_the_mask_stage_dequantizes(tiny_bundle, varied, artifact):
    """Dequantizing moves out of the inference thread: what it passes on is the runtime's own output (int8 for
    TFLite int8), and the mask made from it later is the one predict() makes in one go."""
    from segedge.edge.pipeline import Stages

    root, _ = varied
    photo = sorted(root.iterdir())[0]
    with load(tiny_bundle, threads=1, artifact=artifact) as segmenter:
        stages = Stages(segmenter)
        inferred = stages.infer(stages.prepare(photo))
        raw = inferred[0]
        if artifact == "int8":
            assert raw.dtype in (np.int8, np.uint8)  # not yet float: nothing was dequantized
        np.testing.assert_array_equal(segmenter.logits_from(raw), segmenter.infer(segmenter.prepare(photo)[0]))
        np.testing.assert_array_equal(stages.mask(inferred), segmenter.predict(photo))
        for each in sorted(root.iterdir()):  # dequantizing only the boundary taps: the mask of all the floats
            if each.name == "d_broken.jpg":
                continue
            pixels, placement, size = segmenter.prepare(each)
            raw = segmenter.infer_raw(pixels)
            np.testing.assert_array_equal(segmenter.mask_from(raw, placement, size),
                                          segmenter.full_mask(segmenter.logits_from(raw), placement, size),
                                          err_msg=each.name)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")
def test_the_reader_and_writer_yield_to_the_model_thread_and_the_caller_keeps_its_priority(tiny_bundle, varied,
                                                                                           tmp_path):
    """The model's thread is the slowest stage: the reader and the writer lower their own priority so it runs
    first; the inference thread, and the caller after the run, keep the caller's."""
    import os

    root, _ = varied
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, set[int]] = {"prepare": set(), "infer": set(), "full_mask": set()}

    class Nice(Recording):
        def _note(self, step):
            seen[step].add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

        def prepare(self, image):
            self._note("prepare")
            return super().prepare(image)

        def infer_raw(self, pixels):
            self._note("infer")
            return super().infer_raw(pixels)

        def mask_from(self, *args):
            self._note("full_mask")
            return super().mask_from(*args)

    with load(tiny_bundle, threads=1, artifact="int8") as segmenter:
        predict_files(Nice(segmenter), resolve_inputs([str(root)]).sources, tmp_path / "o")
    assert seen["prepare"] == seen["full_mask"] == {max(own, YIELD_NICE)}
    assert seen["infer"] == {own}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
    assert no_workers_left()


@pytest.mark.parametrize("failing", ["overlay", "mask"])
def test_a_photo_whose_other_file_fails_still_records_the_one_written(tiny_bundle, varied, tmp_path, failing,
                                                                      monkeypatch):
    """The mask PNG is written in a second thread beside the overlay: when one of the two fails, the error
    reaches the caller and the file that was written is recorded (the marker owns it), the other is absent."""
    import segedge.edge.runner as runner

    root, _ = varied
    sources = resolve_inputs([str(root / "e_photo.jpg")]).sources

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runner, "save_image" if failing == "overlay" else "save_mask", broken)
    recorded: list[Path] = []
    with load(tiny_bundle, threads=1, artifact="int8") as segmenter, pytest.raises(OSError, match="disk full"):
        predict_files(segmenter, sources, tmp_path / "o", single=True, record=recorded.append)
    kept = "e_photo.png" if failing == "overlay" else "e_photo_overlay.jpg"
    assert [path.name for path in recorded] == [kept]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [kept]


def test_the_overlay_drawn_on_the_read_photo_equals_one_drawn_on_a_copy(tiny_bundle, varied, tmp_path):
    """predict tints the photo it read in place (no full-size copy): the files are those of the copying path."""
    from segedge.data.images import read_upright
    from segedge.edge.postprocess import save_image

    root, _ = varied
    photo = root / "e_photo.jpg"
    with load(tiny_bundle, threads=1, artifact="int8") as segmenter:
        predict_files(segmenter, resolve_inputs([str(photo)]).sources, tmp_path / "o", single=True)
        image = read_upright(photo)
        mask = segmenter.predict(image)
        save_image(tmp_path / "copy.jpg", segmenter.overlay(image, mask))
    np.testing.assert_array_equal(read_mask(tmp_path / "o" / "e_photo.png"), mask)
    assert (tmp_path / "o" / "e_photo_overlay.jpg").read_bytes() == (tmp_path / "copy.jpg").read_bytes()
