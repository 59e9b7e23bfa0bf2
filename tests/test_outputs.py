"""Nothing a user owns is ever deleted: the output-folder rule (``segedge.util.outputs``) through the real CLI.

Every command that writes a folder (``data synth``, ``train``, ``export``, ``bench``, ``predict --out``)
may create it, use an existing empty folder, or replace (only with ``--overwrite``) a folder carrying
segedge's ``.segedge.json`` marker of the same kind. Everything else is refused with one ``error:`` line
naming the path, exit 8, and the user's files byte for byte as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segedge.cli import app
from segedge.util import outputs

runner = CliRunner()
SYNTH = ["--images", "3", "--size", "32"]
QUICK_BENCH = ["--artifacts", "fp32", "--threads", "1", "--runs", "1", "--warmup", "0", "--e2e-images", "0",
               "--no-keras", "--gallery", "0", "--no-plot"]
TINY_TRAIN = ["--image-size", "32", "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "1",
              "--validation-steps", "1", "--run-eagerly"]


def cli(*args) -> object:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"an exception escaped: {result.exception!r}\n{result.output}")
    assert "Traceback" not in result.output
    return result


def error_line(result) -> str:
    """The single ``error:`` line of a refused command."""
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` -> sha256 of its bytes ("dir" for folders)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def user_folder(path: Path, **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def marker(folder: Path) -> dict:
    return json.loads((folder / outputs.MARKER).read_text())


# ----------------------------------------------------------------------------------------------- data synth
def test_synth_overwrite_never_deletes_a_users_folder(tmp_path: Path):
    """The repro: ``--overwrite`` on a folder segedge did not write used to delete mywork.txt."""
    x = user_folder(tmp_path / "x", **{"mywork.txt": "keep\n"})
    result = cli("data", "synth", x, *SYNTH, "--overwrite")
    assert result.exit_code == 8, result.output
    line = error_line(result)
    assert str(x) in line and "1 file not written by segedge (mywork.txt)" in line
    assert (x / "mywork.txt").read_text() == "keep\n" and sorted(p.name for p in x.iterdir()) == ["mywork.txt"]


def test_synth_refuses_the_current_folder_and_its_parents(tmp_path: Path, monkeypatch):
    here = user_folder(tmp_path / "work" / "here", **{"notes.txt": "mine"})
    monkeypatch.chdir(here)
    before = snapshot(tmp_path)
    for target in (".", "..", str(here)):
        result = cli("data", "synth", target, *SYNTH, "--overwrite")
        assert result.exit_code == 8, result.output
        assert "current folder" in error_line(result) and target in error_line(result)
    assert snapshot(tmp_path) == before


def test_synth_refuses_the_home_folder_even_empty(tmp_path: Path, monkeypatch):
    home = user_folder(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))
    result = cli("data", "synth", home, *SYNTH, "--overwrite")
    assert result.exit_code == 8 and "home folder" in error_line(result)
    assert list(home.iterdir()) == []


def test_synth_never_replaces_a_file_with_a_folder(tmp_path: Path):
    photo = tmp_path / "some" / "file.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"\xff\xd8 my picture")
    result = cli("data", "synth", photo, *SYNTH, "--overwrite")
    assert result.exit_code == 8 and str(photo) in error_line(result) and "is a file" in error_line(result)
    assert photo.read_bytes() == b"\xff\xd8 my picture"


def test_synth_accepts_an_empty_folder_and_replaces_only_its_own_dataset(tmp_path: Path):
    empty = user_folder(tmp_path / "empty")
    result = cli("data", "synth", empty, *SYNTH)  # no --overwrite needed for an empty folder
    assert result.exit_code == 0, result.output
    assert marker(empty)["kind"] == "dataset"
    assert set(marker(empty)["files"]) == {"JPEGImages", "SegmentationClass", "ImageSets"}
    first = snapshot(empty)

    again = cli("data", "synth", empty, *SYNTH, "--seed", "5")
    assert again.exit_code == 8 and "already holds a segedge dataset; pass --overwrite" in error_line(again)
    assert snapshot(empty) == first

    replaced = cli("data", "synth", empty, *SYNTH, "--seed", "5", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    jpg = "JPEGImages/synth_000000.jpg"
    assert snapshot(empty)[jpg] != first[jpg]  # a different seed: the dataset really was replaced


def test_synth_overwrite_refuses_a_marked_dataset_holding_user_files(tmp_path: Path):
    root = tmp_path / "voc"
    assert cli("data", "synth", root, *SYNTH).exit_code == 0
    (root / "labels-todo.txt").write_text("mine")
    before = snapshot(root)
    result = cli("data", "synth", root, *SYNTH, "--overwrite")
    assert result.exit_code == 8 and "labels-todo.txt" in error_line(result)
    assert snapshot(root) == before


def test_a_marker_of_another_kind_is_refused_even_with_overwrite(tmp_path: Path):
    folder = user_folder(tmp_path / "bundle", **{"manifest.json": "{}"})
    outputs.write_marker(folder, "bundle", ["manifest.json"])
    before = snapshot(folder)
    result = cli("data", "synth", folder, *SYNTH, "--overwrite")
    assert result.exit_code == 8 and "holds a segedge bundle, not a dataset" in error_line(result)
    assert snapshot(folder) == before


def test_a_broken_or_hand_made_marker_proves_nothing(tmp_path: Path):
    folder = user_folder(tmp_path / "d", **{outputs.MARKER: "not json", "mine.txt": "x"})
    result = cli("data", "synth", folder, *SYNTH, "--overwrite")
    assert result.exit_code == 8 and "2 files not written by segedge" in error_line(result)
    assert (folder / "mine.txt").read_text() == "x"


# ----------------------------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def micro_bundle_ro(micro_run: Path, tmp_path_factory) -> Path:
    """A read-only fp32 bundle of ``micro_run`` (converts in seconds)."""
    pytest.importorskip("tensorflow")
    from segedge.contract.targets import parse_targets
    from segedge.export.bundle import export_bundle

    out = tmp_path_factory.mktemp("outputs_bundle") / "bundle"
    export_bundle(micro_run, out, parse_targets("fp32"), eval_count=2)
    return out


EXPORT = ["--formats", "fp32", "--eval", "2"]


@pytest.mark.slow
def test_export_overwrite_never_deletes_a_users_folder(micro_run: Path, tmp_path: Path):
    out = user_folder(tmp_path / "dir", **{"thesis.tex": "chapter 1"})
    result = cli("export", micro_run, "--out", out, *EXPORT, "--overwrite")
    assert result.exit_code == 8 and str(out) in error_line(result) and "thesis.tex" in error_line(result)
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


@pytest.mark.slow
def test_export_accepts_an_empty_out_and_replaces_only_a_marked_bundle(micro_run: Path, tmp_path: Path):
    out = user_folder(tmp_path / "empty")
    result = cli("export", micro_run, "--out", out, *EXPORT)
    assert result.exit_code == 0, result.output
    assert marker(out)["kind"] == "bundle" and "manifest.json" in marker(out)["files"]
    created = json.loads((out / "manifest.json").read_text())["created"]

    again = cli("export", micro_run, "--out", out, *EXPORT)
    assert again.exit_code == 8 and "already holds a segedge bundle; pass --overwrite" in error_line(again)

    (out / "notes.md").write_text("mine")
    kept = cli("export", micro_run, "--out", out, *EXPORT, "--overwrite")
    assert kept.exit_code == 8 and "notes.md" in error_line(kept)
    assert (out / "notes.md").read_text() == "mine"
    (out / "notes.md").unlink()

    replaced = cli("export", micro_run, "--out", out, *EXPORT, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((out / "manifest.json").read_text())["created"] >= created
    assert marker(out)["kind"] == "bundle" and not [p for p in tmp_path.iterdir() if ".segedge-tmp" in p.name]


def test_export_refuses_a_dataset_as_out_even_with_overwrite(synth_root: Path, tmp_path: Path):
    """Refused before any conversion: the run folder need not even be a real one."""
    voc = Path(shutil.copytree(synth_root, tmp_path / "voc"))
    before = snapshot(voc)
    result = cli("export", tmp_path / "run", "--out", voc, "--overwrite")
    assert result.exit_code == 8 and "holds a segedge dataset, not a bundle" in error_line(result)
    assert snapshot(voc) == before


# ----------------------------------------------------------------------------------------------- predict
@pytest.fixture
def photo(synth_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    return Path(shutil.copy2(sorted((synth_root / "JPEGImages").iterdir())[0], folder / "photo.jpg"))


@pytest.mark.slow
def test_predict_out_never_writes_into_a_users_folder(micro_bundle_ro: Path, photo: Path, tmp_path: Path):
    out = user_folder(tmp_path / "mine", **{"photo.png": "my own png"})
    result = cli("predict", micro_bundle_ro, photo, "--out", out)
    assert result.exit_code == 8 and str(out) in error_line(result) and "photo.png" in error_line(result)
    assert (out / "photo.png").read_text() == "my own png" and len(list(out.iterdir())) == 1

    result = cli("predict", micro_bundle_ro, photo, "--out", photo)  # a file is never replaced by a folder
    assert result.exit_code == 8 and "is a file" in error_line(result)
    assert photo.read_bytes()[:2] == b"\xff\xd8"


@pytest.mark.slow
def test_predict_adds_to_its_own_folder_and_replaces_only_its_own_masks(micro_bundle_ro: Path, photo: Path,
                                                                        tmp_path: Path):
    out = user_folder(tmp_path / "masks")  # an empty folder: accepted
    first = cli("predict", micro_bundle_ro, photo, "--out", out)
    assert first.exit_code == 0, first.output
    assert marker(out)["kind"] == "predictions"
    assert set(marker(out)["files"]) == {"photo.png", "photo_overlay.jpg"}

    (out / "photo.png").write_bytes(b"stale mask")  # segedge's own earlier mask: may be replaced
    (out / "README.txt").write_text("mine")
    other = Path(shutil.copy2(photo, photo.parent / "other.jpg"))
    again = cli("predict", micro_bundle_ro, photo, other, "--out", out, "--no-overlay")
    assert again.exit_code == 0, again.output
    assert (out / "photo.png").read_bytes() != b"stale mask" and (out / "other.png").is_file()
    assert (out / "photo_overlay.jpg").is_file() and (out / "README.txt").read_text() == "mine"
    assert set(marker(out)["files"]) == {"photo.png", "photo_overlay.jpg", "other.png"}

    third = Path(shutil.copy2(photo, photo.parent / "third.jpg"))
    (out / "third.png").write_text("not a mask segedge wrote")
    clash = cli("predict", micro_bundle_ro, third, "--out", out)
    assert clash.exit_code == 8 and "third.png: not written by segedge" in error_line(clash)
    assert (out / "third.png").read_text() == "not a mask segedge wrote"
    assert not (out / "third_overlay.jpg").exists()  # refused before anything was written


@pytest.mark.slow
def test_predict_that_fails_leaves_no_folder(micro_bundle_ro: Path, tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = tmp_path / "new"
    result = cli("predict", micro_bundle_ro, broken, "--out", out)
    assert result.exit_code == 3, result.output
    assert not out.exists()


# ----------------------------------------------------------------------------------------------- bench
def test_bench_refuses_a_users_folder_and_a_bundle_before_measuring(tmp_path: Path):
    out = user_folder(tmp_path / "report", **{"draft.md": "# mine"})
    result = cli("bench", tmp_path / "no-bundle", "--out", out, "--overwrite")
    assert result.exit_code == 8 and str(out) in error_line(result) and "draft.md" in error_line(result)
    bundle = user_folder(tmp_path / "bundle", **{"manifest.json": "{}"})
    outputs.write_marker(bundle, "bundle", ["manifest.json"])
    result = cli("bench", bundle, "--out", bundle, "--overwrite")
    assert result.exit_code == 8 and "holds a segedge bundle, not a bench report" in error_line(result)
    assert (out / "draft.md").read_text() == "# mine" and (bundle / "manifest.json").read_text() == "{}"


@pytest.mark.slow
def test_bench_replaces_its_own_report_only_with_overwrite(micro_bundle_ro: Path, tmp_path: Path):
    out = tmp_path / "report"
    first = cli("bench", micro_bundle_ro, "--out", out, *QUICK_BENCH)
    assert first.exit_code in (0, 7), first.output
    assert marker(out)["kind"] == "report" and (out / "report.json").is_file()

    again = cli("bench", micro_bundle_ro, "--out", out, *QUICK_BENCH)
    assert again.exit_code == 8 and "already holds a segedge bench report" in error_line(again)

    (out / "notes.txt").write_text("mine")
    (out / "report.json").write_text("stale")
    replaced = cli("bench", micro_bundle_ro, "--out", out, *QUICK_BENCH, "--overwrite")
    assert replaced.exit_code in (0, 7), replaced.output
    assert json.loads((out / "report.json").read_text())["tool"] == "segedge bench"
    assert (out / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------------------------------------- train
def test_train_overwrite_never_deletes_a_users_folder(synth_root: Path, tmp_path: Path):
    pytest.importorskip("tensorflow")
    out = user_folder(tmp_path / "run", **{"config.json": "{\"mine\": 1}", "notes.txt": "x"})
    before = snapshot(out)
    result = cli("train", synth_root, "--out", out, *TINY_TRAIN, "--overwrite")
    assert result.exit_code == 8 and str(out) in error_line(result)
    assert "2 files not written by segedge (config.json, notes.txt)" in error_line(result)
    assert snapshot(out) == before


@pytest.mark.slow
def test_failed_train_start_leaves_nothing_and_the_rerun_works(synth_root: Path, tmp_path: Path):
    bad = tmp_path / "weights.h5"
    bad.write_bytes(b"this is not an HDF5 file")
    new, empty = tmp_path / "new-run", user_folder(tmp_path / "empty-run")
    for out in (new, empty):
        for _ in range(2):  # the same command simply runs again: the same error, not "already holds a run"
            result = cli("train", synth_root, "--out", out, *TINY_TRAIN, "--encoder-weights", bad)
            assert result.exit_code == 4, result.output
            assert str(bad) in error_line(result) and "encoder weights" in error_line(result)
    assert not new.exists()
    assert empty.is_dir() and list(empty.iterdir()) == []  # the user's empty folder stays, empty

    result = cli("train", synth_root, "--out", empty, *TINY_TRAIN, "--encoder-weights", "none")
    assert result.exit_code == 0, result.output
    assert marker(empty)["kind"] == "run" and (empty / "model.keras").is_file()


def test_train_with_a_missing_split_file_leaves_nothing(synth_root: Path, tmp_path: Path):
    pytest.importorskip("tensorflow")
    voc = Path(shutil.copytree(synth_root, tmp_path / "voc"))
    (voc / "ImageSets" / "Segmentation" / "val.txt").unlink()
    out, empty = tmp_path / "run", user_folder(tmp_path / "empty")
    for target in (out, empty, out):
        result = cli("train", voc, "--out", target, *TINY_TRAIN, "--split", "official")
        assert result.exit_code == 3 and "val.txt" in error_line(result), result.output
    assert not out.exists() and list(empty.iterdir()) == []


def test_a_killed_start_is_undone(tmp_path: Path):
    """``Claim.undo`` after ``prepare``: what the start wrote goes, a folder it created goes too."""
    target = outputs.claim(tmp_path / "a" / "run", "run")
    folder = target.prepare(["config.json", "split.json"])
    (folder / "config.json").write_text("{}")
    target.undo(["config.json", "split.json"])
    assert not (tmp_path / "a").exists()


def test_outputs_never_accept_paths_above_the_working_folder(tmp_path: Path, monkeypatch):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    for path in (deep, tmp_path / "a", tmp_path, Path(os.sep)):
        with pytest.raises(Exception, match="current folder|filesystem root"):
            outputs.claim(path, "report", overwrite=True)


@pytest.fixture(scope="module")
def cli_run(synth_root: Path, tmp_path_factory) -> Path:
    """A one-step run written by ``segedge train`` (read-only: copy it to change it)."""
    pytest.importorskip("tensorflow")
    out = tmp_path_factory.mktemp("outputs_run") / "run"
    result = cli("train", synth_root, "--out", out, *TINY_TRAIN)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_train_overwrite_replaces_only_the_marked_runs_files(cli_run: Path, synth_root: Path, tmp_path: Path):
    run = Path(shutil.copytree(cli_run, tmp_path / "run"))
    assert marker(run)["kind"] == "run" and {"config.json", "split.json", "model.keras"} <= set(marker(run)["files"])
    (run / "notes.txt").write_text("keep me")
    (run / "bundle").mkdir()  # what 'segedge export RUN' writes by default: not part of the run
    (run / "bundle" / "manifest.json").write_text("{}")
    refused = cli("train", synth_root, "--out", run, *TINY_TRAIN)
    assert refused.exit_code == 8
    assert "already holds a segedge run; continue it with --resume" in error_line(refused)
    old_model = (run / "model.keras").read_bytes()
    result = cli("train", synth_root, "--out", run, *TINY_TRAIN, "--seed", "3", "--overwrite")
    assert result.exit_code == 0, result.output
    assert (run / "notes.txt").read_text() == "keep me" and (run / "bundle" / "manifest.json").read_text() == "{}"
    assert (run / "model.keras").read_bytes() != old_model
    assert json.loads((run / "config.json").read_text())["seed"] == 3


@pytest.mark.slow
def test_resume_works_on_a_run_without_the_marker(cli_run: Path, tmp_path: Path):
    """Runs written before the marker existed have config.json only: --resume continues and marks them."""
    run = Path(shutil.copytree(cli_run, tmp_path / "run"))
    (run / outputs.MARKER).unlink()
    result = cli("train", "--resume", run, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert [row["epoch"] for row in _history(run)] == [1, 2]
    assert marker(run)["kind"] == "run"


def _history(run: Path) -> list[dict]:
    from segedge.train.rundir import read_history

    return read_history(run)


def test_a_marker_naming_a_parent_folder_steers_no_deletion(tmp_path: Path):
    report = user_folder(tmp_path / "report", **{"report.json": "{}"})
    (report / outputs.MARKER).write_text(json.dumps({"kind": "report", "files": ["..", "report.json"]}))
    with pytest.raises(Exception, match=r"holds 2 files not written by segedge"):
        outputs.claim(report, "report", overwrite=True)
    assert (tmp_path / "report" / "report.json").is_file()
