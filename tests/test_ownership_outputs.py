"""Ownership file by file: predictions, quant reports and output folders given as symbolic links.

The marker lists exactly what segedge wrote (a predictions folder by each file's relative path), so a
user's file in a sub-folder beside segedge's masks, a quant_report.md of the user's, or a link to
another disk is never replaced, deleted or turned into something else.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segedge.cli import app
from segedge.quant.layers import LayerError
from segedge.quant.report import REPORT_JSON, QuantReport
from segedge.quant.report_files import REPORT_MD, REPORT_NAMES, report_target, write_report
from segedge.util import fileio, outputs
from segedge.util.errors import OutputError

runner = CliRunner()


def cli(*args) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"an exception escaped: {result.exception!r}\n{result.output}")
    return result


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def linked_folder(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """(the folder on "another disk", ``tmp_path / name``: a symlink to it), as a user points an output
    at a dataset disk."""
    disk = tmp_path / "disk2" / name
    disk.mkdir(parents=True)
    link = tmp_path / name
    link.symlink_to(disk, target_is_directory=True)
    return disk, link


def marker_files(folder: Path) -> list[str]:
    return json.loads((folder / outputs.MARKER).read_text())["files"]


def a_report() -> QuantReport:
    rows = [LayerError(name=f"layer{i}", op="CONV_2D", rmse=0.01 * i, scale=0.1, rmse_over_scale=0.1 * i,
                       correlation=1 - 0.01 * i) for i in range(3)]
    return QuantReport(tflite=rows, onnx=None, samples={"count": 1}, bundle="b")


def a_bundle(folder: Path) -> Path:
    """A bundle folder as export leaves it (marker owning its files)."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    (folder / "model_int8.tflite").write_bytes(b"tflite")
    outputs.write_marker(folder, "bundle", ["manifest.json", "model_int8.tflite"])
    return folder


# ----------------------------------------------------------------------------------------- quant report
def test_quant_report_refuses_a_folder_of_user_files(tmp_path: Path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / REPORT_MD).write_text("my notes")
    (out / REPORT_JSON).write_text('{"mine": 1}')
    for overwrite in (False, True):
        with pytest.raises(OutputError, match=r"holds 2 files not written by segedge"):
            report_target(out, tmp_path / "bundle", overwrite)
    assert (out / REPORT_MD).read_text() == "my notes" and (out / REPORT_JSON).read_text() == '{"mine": 1}'


def test_quant_report_out_is_an_output_of_its_own(tmp_path: Path):
    out, bundle = tmp_path / "qr", tmp_path / "bundle"
    written = write_report(a_report(), out, target=report_target(out, bundle))
    assert json.loads((out / outputs.MARKER).read_text())["kind"] == "quant-report"
    assert marker_files(out) == sorted(p.name for p in written.values())

    with pytest.raises(OutputError, match="already holds a segedge quant report; pass --overwrite"):
        report_target(out, bundle)
    (out / "mine.txt").write_text("mine")
    write_report(a_report(), out, target=report_target(out, bundle, overwrite=True))
    assert (out / "mine.txt").read_text() == "mine"  # written in place: the user's file stays
    assert "mine.txt" not in marker_files(out)


def test_quant_report_into_the_bundle_records_its_files_and_keeps_the_users(tmp_path: Path):
    bundle = a_bundle(tmp_path / "bundle")
    for _ in range(2):  # its own earlier report is replaced, no --overwrite needed
        written = write_report(a_report(), bundle, target=report_target(None, bundle))
        assert set(marker_files(bundle)) == {"manifest.json", "model_int8.tflite",
                                             *(p.name for p in written.values())}
    outputs.claim(bundle, "bundle", overwrite=True)  # export --overwrite: everything there is segedge's

    (bundle / REPORT_MD).unlink()
    (bundle / REPORT_MD).write_text("my own notes")
    owned = [n for n in marker_files(bundle) if n != REPORT_MD]
    outputs.write_marker(bundle, "bundle", owned)  # segedge never wrote this quant_report.md
    with pytest.raises(OutputError, match=f"{REPORT_MD}: not written by segedge"):
        report_target(None, bundle)
    with pytest.raises(OutputError, match=f"{REPORT_MD}: not written by segedge"):
        report_target(bundle, bundle)  # --out naming the bundle is the bundle
    with pytest.raises(OutputError, match=REPORT_MD):
        outputs.claim(bundle, "bundle", overwrite=True)  # not removed by export --overwrite either
    assert (bundle / REPORT_MD).read_text() == "my own notes"


def test_a_user_file_put_into_the_bundle_during_the_report_is_kept(tmp_path: Path):
    bundle = a_bundle(tmp_path / "bundle")
    target = report_target(None, bundle)  # decided before the slow work
    (bundle / REPORT_JSON).write_text("mine, meanwhile")
    with pytest.raises(OutputError, match=REPORT_JSON):
        write_report(a_report(), bundle, target=target)
    assert (bundle / REPORT_JSON).read_text() == "mine, meanwhile"


def test_quant_report_names_are_the_bundles_also_owned_names():
    assert set(REPORT_NAMES) == set(outputs.ALSO_OWNED["bundle"])


@pytest.mark.slow
def test_quant_report_cli_refuses_user_files_before_any_work(micro_run: Path, micro_bundle: Path, tmp_path: Path):
    out = tmp_path / "qr"
    out.mkdir()
    (out / REPORT_MD).write_text("my notes")
    result = cli("quant-report", micro_run, "--bundle", micro_bundle, "--out", out, "--overwrite")
    assert result.exit_code == 8 and "quant_report.md" in error_line(result)
    assert sorted(p.name for p in out.iterdir()) == [REPORT_MD] and (out / REPORT_MD).read_text() == "my notes"


# ----------------------------------------------------------------------------------------- predictions
def test_a_predictions_marker_names_files_by_relative_path_and_nothing_outside(tmp_path: Path):
    folder = tmp_path / "out"
    folder.mkdir()
    for bad in (["/etc/passwd"], ["../x.png"], ["sub/../../x.png"], ["./x.png"], ["sub//x.png"], [""]):
        (folder / outputs.MARKER).write_text(json.dumps({"kind": "predictions", "files": bad}))
        assert outputs.read_marker(folder) is None, bad
    (folder / outputs.MARKER).write_text(json.dumps({"kind": "predictions", "files": ["sub/x.png", "y.png"]}))
    assert outputs.read_marker(folder)["files"] == ["sub/x.png", "y.png"]
    (folder / outputs.MARKER).write_text(json.dumps({"kind": "run", "files": ["sub/x.png"]}))
    assert outputs.read_marker(folder) is None  # the other kinds own top-level entries only


def test_an_old_marker_owning_a_folder_does_not_own_a_file_in_it(tmp_path: Path):
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "other.png").write_bytes(b"segedge's")
    (folder / "sub" / "photo.png").write_bytes(b"the user's")
    (folder / outputs.MARKER).write_text(json.dumps({"kind": "predictions", "files": ["sub", "a.png"]}))
    target = outputs.claim(folder, "predictions", reuse=True)
    assert not target.owns(folder / "sub" / "photo.png")
    assert target.owns(folder / "a.png")


def test_recording_lists_only_files_written_not_planned_or_appearing(tmp_path: Path):
    folder = tmp_path / "out"
    target = outputs.claim(folder, "predictions", reuse=True)
    with pytest.raises(RuntimeError):
        with outputs.recording(target) as recorder:
            fileio.write_bytes(folder / "sub" / "a.png", b"mask")
            recorder.add(folder / "sub" / "a.png")
            (folder / "user.txt").write_text("appeared meanwhile")  # not written by this run
            recorder.add(tmp_path / "elsewhere.png")  # outside the folder: never recorded
            raise RuntimeError("the second photo failed before its mask was written")
    assert marker_files(folder) == ["sub/a.png"]
    again = outputs.claim(folder, "predictions", reuse=True)
    assert again.owns(folder / "sub" / "a.png") and not again.owns(folder / "user.txt")


def test_a_file_reached_through_a_link_in_the_folder_is_never_owned(tmp_path: Path):
    folder, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (elsewhere / "photo.png").write_bytes(b"the user's")
    (folder / "sub").symlink_to(elsewhere, target_is_directory=True)
    outputs.write_marker(folder, "predictions", ["sub/photo.png"])
    assert not outputs.claim(folder, "predictions", reuse=True).owns(folder / "sub" / "photo.png")


def test_a_failed_first_predict_leaves_no_folder(tmp_path: Path):
    target = outputs.claim(tmp_path / "new", "predictions", reuse=True)
    with pytest.raises(KeyboardInterrupt):
        with outputs.recording(target):
            raise KeyboardInterrupt
    assert not (tmp_path / "new").exists()


@pytest.fixture
def photos(synth_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    jpgs = sorted((synth_root / "JPEGImages").iterdir())
    shutil.copy2(jpgs[0], folder / "a.jpg")
    shutil.copy2(jpgs[1], folder / "sub" / "other.jpg")
    return folder


@pytest.mark.slow
def test_predict_owns_each_mask_it_wrote_in_a_sub_folder_not_the_folder(micro_bundle: Path, photos: Path,
                                                                        tmp_path: Path):
    out = tmp_path / "out"
    first = cli("predict", micro_bundle, photos, "-r", "--out", out)
    assert first.exit_code == 0, first.output
    assert marker_files(out) == ["a.png", "a_overlay.jpg", "sub/other.png", "sub/other_overlay.jpg"]

    (out / "sub" / "photo.png").write_bytes(b"my own photo")
    shutil.copy2(photos / "a.jpg", photos / "sub" / "photo.jpg")
    for _ in range(2):
        clash = cli("predict", micro_bundle, photos, "-r", "--out", out, "--no-overlay")
        assert clash.exit_code == 8 and "sub/photo.png: not written by segedge" in error_line(clash)
        assert (out / "sub" / "photo.png").read_bytes() == b"my own photo"
    outputs.write_marker(out, "predictions", ["a.png", "sub"])  # an older version's marker: the whole 'sub'
    clash = cli("predict", micro_bundle, photos, "-r", "--out", out, "--no-overlay")
    assert clash.exit_code == 8 and (out / "sub" / "photo.png").read_bytes() == b"my own photo"

    (photos / "sub" / "photo.jpg").unlink()
    outputs.write_marker(out, "predictions", ["a.png", "a_overlay.jpg", "sub/other.png", "sub/other_overlay.jpg"])
    again = cli("predict", micro_bundle, photos, "-r", "--out", out)  # its own masks: replaced
    assert again.exit_code == 0, again.output
    assert (out / "sub" / "photo.png").read_bytes() == b"my own photo"
    assert "sub/photo.png" not in marker_files(out)


# ----------------------------------------------------------------------------------------- symbolic links
def test_synth_overwrite_through_a_link_keeps_the_link(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    disk = tmp_path / "disk2"
    disk.mkdir()
    assert cli("data", "synth", disk / "ds", "--images", "3", "--size", "32").exit_code == 0
    link = tmp_path / "ds"
    link.symlink_to(disk / "ds", target_is_directory=True)
    for _ in range(2):
        result = cli("data", "synth", link, "--images", "3", "--size", "32", "--overwrite")
        assert result.exit_code == 0, result.output
        assert link.is_symlink() and outputs.read_marker(disk / "ds")["kind"] == "dataset"
    assert sorted(e.name for e in tmp_path.iterdir()) == ["disk2", "ds"]
    assert sorted(e.name for e in disk.iterdir()) == ["ds"]


def test_a_run_folder_given_as_a_link_is_written_in_place(tmp_path: Path):
    disk, link = linked_folder(tmp_path, "run")
    for overwrite in (False, True):
        target = outputs.claim(link, "run", overwrite)
        target.prepare(["config.json"])
        fileio.write_json(link / "config.json", {"epochs": 1})
        assert link.is_symlink() and (disk / "config.json").is_file()
    assert outputs.read_marker(disk)["files"] == ["config.json"]


def test_predictions_through_a_link_are_recorded_in_the_links_target(tmp_path: Path):
    disk, link = linked_folder(tmp_path, "masks")
    for _ in range(2):
        target = outputs.claim(link, "predictions", reuse=True)
        assert target.owns(link / "a.png") == (disk / "a.png").exists()
        with outputs.recording(target) as recorder:
            fileio.write_bytes(link / "a.png", b"mask")
            recorder.add(link / "a.png")
    assert link.is_symlink() and marker_files(disk) == ["a.png"]
