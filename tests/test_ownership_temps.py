"""Temp folders are segedge's own and only of a process that is gone: never a sibling's, never a live one's.

Every temp is named ``.segedge-tmp-<pid>-<token>-<name>``; a build of ``bundle`` cleans up only the temps
for exactly ``bundle`` whose process has ended, so a concurrent build of ``bundle-int8`` (or of ``bundle``
itself, in another process) keeps its half-built folder. Scratch space (converter SavedModels) follows the
same scheme in the system temp folder, and an output folder given as a symbolic link is written through.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from test_ownership_outputs import linked_folder

from segedge.util import fileio, outputs
from segedge.util.errors import OutputError, SegedgeError

ROOT = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def temps(folder: Path) -> list[str]:
    return sorted(e.name for e in folder.iterdir() if e.name.startswith(fileio.TMP_PREFIX))


def plant(folder: Path, name: str) -> Path:
    """A temp folder left by some run, holding one file."""
    temp = folder / name
    temp.mkdir()
    (temp / "half.bin").write_bytes(b"x" * 10)
    return temp


# ----------------------------------------------------------------------------------------- concurrent builds
def test_finishing_a_build_keeps_a_concurrent_sibling_build(tmp_path: Path):
    """``bundle`` and ``bundle-int8`` built at the same time in one folder: both complete."""
    entered, release, errors = threading.Event(), threading.Event(), []

    def build_sibling() -> None:
        try:
            with fileio.atomic_dir(tmp_path / "bundle-int8") as tmp:
                (tmp / "first.bin").write_bytes(b"1")
                entered.set()
                release.wait(30)
                (tmp / "model_int8.tflite").write_bytes(b"int8")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
            entered.set()

    sibling = threading.Thread(target=build_sibling)
    sibling.start()
    assert entered.wait(30)
    with fileio.atomic_dir(tmp_path / "bundle") as tmp:  # starts and finishes while the sibling is half built
        (tmp / "model_fp32.tflite").write_bytes(b"fp32")
    release.set()
    sibling.join(30)
    assert errors == []
    assert (tmp_path / "bundle" / "model_fp32.tflite").read_bytes() == b"fp32"
    assert (tmp_path / "bundle-int8" / "model_int8.tflite").read_bytes() == b"int8"
    assert temps(tmp_path) == []


def test_concurrent_sibling_builds_in_two_processes(tmp_path: Path):
    """A second process builds ``bundle-int8`` slowly while this one builds ``bundle`` twice."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from segedge.util import fileio
        with fileio.atomic_dir(Path({str(tmp_path)!r}) / "bundle-int8") as tmp:
            (tmp / "a.bin").write_bytes(b"a")
            print("started", flush=True)
            sys.stdin.readline()
            (tmp / "model_int8.tflite").write_bytes(b"int8")
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "started"
        for _ in range(2):
            with fileio.atomic_dir(tmp_path / "bundle") as tmp:
                (tmp / "model_fp32.tflite").write_bytes(b"fp32")
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (tmp_path / "bundle-int8" / "model_int8.tflite").read_bytes() == b"int8"
    assert temps(tmp_path) == []


# ----------------------------------------------------------------------------------------- stale temps
def test_stale_temps_of_a_dead_process_are_removed_and_a_live_ones_kept(tmp_path: Path):
    gone = dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_own = plant(tmp_path, f"{fileio.TMP_PREFIX}{gone}-abcd1234-bundle")
        live_own = plant(tmp_path, f"{fileio.TMP_PREFIX}{live.pid}-abcd1234-bundle")
        mine = plant(tmp_path, f"{fileio.TMP_PREFIX}{os.getpid()}-abcd1234-bundle")
        dead_sibling = plant(tmp_path, f"{fileio.TMP_PREFIX}{gone}-abcd1234-bundle-int8")
        fileio.remove_stale_temps(tmp_path, "bundle")
        assert not dead_own.exists()
        assert live_own.is_dir() and mine.is_dir()  # a concurrent build of the same name goes on
        assert dead_sibling.is_dir()  # another output's temp: not this build's to remove
        fileio.remove_stale_temps(tmp_path, "bundle-int8")
        assert not dead_sibling.exists()
    finally:
        live.kill()
        live.wait()
    fileio.remove_stale_temps(tmp_path, "bundle")  # its process is gone now
    assert not live_own.exists() and mine.is_dir()


def test_the_names_of_older_versions_are_removed_for_their_own_stem_only(tmp_path: Path):
    legacy = plant(tmp_path, f"{fileio.TMP_PREFIX}bundle-k2j4_x9q")
    legacy_old = plant(tmp_path, f"{fileio.TMP_PREFIX}bundle-old")
    sibling = plant(tmp_path, f"{fileio.TMP_PREFIX}bundle-int8-k2j4_x9q")
    sibling_old = plant(tmp_path, f"{fileio.TMP_PREFIX}bundle-int8-old")
    fileio.remove_stale_temps(tmp_path, "bundle")
    assert not legacy.exists() and not legacy_old.exists()
    assert sibling.is_dir() and sibling_old.is_dir()


def test_a_folder_wide_cleanup_keeps_a_live_processs_temp_file(tmp_path: Path):
    """Inside a run or predictions folder: every temp of a process that is gone, none of a live one."""
    (tmp_path / f"{fileio.TMP_PREFIX}{dead_pid()}-abcd1234-model.keras").write_bytes(b"half")
    (tmp_path / f"{fileio.TMP_PREFIX}{os.getpid()}-abcd1234-photo.png").write_bytes(b"half")
    (tmp_path / "user.txt").write_text("mine")
    fileio.remove_stale_temps(tmp_path)
    assert sorted(e.name for e in tmp_path.iterdir()) == [f"{fileio.TMP_PREFIX}{os.getpid()}-abcd1234-photo.png",
                                                         "user.txt"]


def test_a_stale_temp_that_is_a_link_is_removed_without_following_it(tmp_path: Path):
    elsewhere = plant(tmp_path, "elsewhere")
    link = tmp_path / f"{fileio.TMP_PREFIX}{dead_pid()}-abcd1234-bundle"
    link.symlink_to(elsewhere, target_is_directory=True)
    fileio.remove_stale_temps(tmp_path, "bundle")
    assert not link.is_symlink() and (elsewhere / "half.bin").is_file()


def test_temp_names_say_whose_they_are(tmp_path: Path):
    made = fileio.make_temp_dir(tmp_path, "my-data.v2")
    assert fileio.temp_owner(made.name) == (os.getpid(), "my-data.v2")
    assert fileio.temp_owner(fileio.temp_name("bundle-int8")) == (os.getpid(), "bundle-int8")
    assert fileio.temp_owner(f"{fileio.TMP_PREFIX}bundle-abcdefgh") is None
    with fileio.atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras" and fileio.temp_owner(tmp.name) == (os.getpid(), "model.keras")
        tmp.write_bytes(b"m")


# ----------------------------------------------------------------------------------------- fetch sbd
def test_fetch_sbd_removes_the_unpacked_masks_a_killed_fetch_left(synth_copy: Path, tmp_path: Path, monkeypatch):
    """A fetch killed while unpacking leaves ``.segedge-tmp-...-<dataset>-sbd``: the next fetch removes it
    (and the older versions' name), never a live fetch's or another dataset's."""
    from segedge.data import fetch

    root = synth_copy
    gone = dead_pid()
    stale = plant(root.parent, f"{fileio.TMP_PREFIX}{gone}-abcd1234-{root.name}-sbd")
    legacy = plant(root.parent, f"{fileio.TMP_PREFIX}{root.name}-sbd-k2j4_x9q")
    live = plant(root.parent, f"{fileio.TMP_PREFIX}{os.getpid()}-abcd1234-{root.name}-sbd")
    other = plant(root.parent, f"{fileio.TMP_PREFIX}{gone}-abcd1234-{root.name}2-sbd")
    empty = tmp_path / "empty.tgz"
    with tarfile.open(empty, "w:gz"):
        pass
    monkeypatch.setattr(fetch, "obtain_archive", lambda source, origin: (empty, False))
    with pytest.raises(SegedgeError):
        fetch.fetch_sbd(root, str(empty), overwrite=False, keep_archive=True)
    assert not stale.exists() and not legacy.exists()
    assert live.is_dir() and other.is_dir()
    assert temps(root.parent) == sorted([live.name, other.name])  # its own work folder is gone too


# ----------------------------------------------------------------------------------------- scratch
def test_scratch_is_removed_on_the_way_out_and_a_dead_runs_by_the_next(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    left = plant(tmp_path, f"{fileio.TMP_PREFIX}{dead_pid()}-abcd1234-{fileio.SCRATCH}")
    live = plant(tmp_path, f"{fileio.TMP_PREFIX}{os.getpid()}-abcd1234-{fileio.SCRATCH}")
    with pytest.raises(KeyboardInterrupt):
        with fileio.scratch_dir() as scratch:
            assert scratch.parent == tmp_path
            (scratch / "savedmodel").mkdir()
            assert not left.exists() and live.is_dir()
            raise KeyboardInterrupt
    assert temps(tmp_path) == [live.name]


def test_sigterm_removes_scratch_and_the_half_built_folder(tmp_path: Path):
    script = textwrap.dedent(f"""
        import os, sys, tempfile, time
        from pathlib import Path
        tempfile.tempdir = {str(tmp_path / "tmp")!r}
        from segedge.util import fileio
        with fileio.atomic_dir(Path({str(tmp_path)!r}) / "bundle") as tmp:
            with fileio.scratch_dir() as scratch:
                (scratch / "savedmodel").mkdir()
                (tmp / "model.tflite").write_bytes(b"half")
                print("ready", flush=True)
                time.sleep(60)
    """)
    (tmp_path / "tmp").mkdir()
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert temps(tmp_path / "tmp") and temps(tmp_path)
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 128 + signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert temps(tmp_path / "tmp") == [] and temps(tmp_path) == [] and not (tmp_path / "bundle").exists()


def test_sigkill_leftovers_are_removed_by_the_next_build(tmp_path: Path):
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from segedge.util import fileio
        with fileio.atomic_dir(Path({str(tmp_path)!r}) / "bundle") as tmp:
            (tmp / "model.tflite").write_bytes(b"half")
            print("ready", flush=True)
            time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout.readline().strip() == "ready"
    child.kill()
    child.wait()
    assert len(temps(tmp_path)) == 1
    with fileio.atomic_dir(tmp_path / "bundle") as tmp:
        (tmp / "model.tflite").write_bytes(b"whole")
    assert temps(tmp_path) == [] and (tmp_path / "bundle" / "model.tflite").read_bytes() == b"whole"


# ----------------------------------------------------------------------------------------- symbolic links
def test_a_swapped_output_given_as_a_link_is_written_through_every_time(tmp_path: Path):
    disk = tmp_path / "disk2"
    disk.mkdir()
    link = tmp_path / "bundle"
    target = outputs.claim(disk / "bundle", "bundle")
    with outputs.build(target) as tmp:
        (tmp / "manifest.json").write_text("1")
    link.symlink_to(disk / "bundle", target_is_directory=True)
    for version in ("2", "3"):
        with outputs.build(outputs.claim(link, "bundle", overwrite=True)) as tmp:
            (tmp / "manifest.json").write_text(version)
        assert link.is_symlink() and (disk / "bundle" / "manifest.json").read_text() == version
        assert temps(tmp_path) == [] and temps(disk) == []
    assert sorted(e.name for e in tmp_path.iterdir()) == ["bundle", "disk2"]


def test_a_link_to_a_users_folder_is_refused_and_left_alone(tmp_path: Path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    link = tmp_path / "bundle"
    link.symlink_to(mine, target_is_directory=True)
    with pytest.raises(OutputError, match="thesis.tex"):
        outputs.claim(link, "bundle", overwrite=True)
    assert link.is_symlink() and (mine / "thesis.tex").read_text() == "x"


def test_an_in_place_output_given_as_a_link_stays_a_link(tmp_path: Path):
    disk, link = linked_folder(tmp_path, "report")
    for _ in range(2):
        target = outputs.claim(link, "report", overwrite=True)
        with outputs.writing(target) as folder:
            fileio.write_text(folder / "report.md", "# report")
            with fileio.atomic_dir(folder / "gallery") as tmp:
                (tmp / "1.png").write_bytes(b"png")
        assert link.is_symlink() and (disk / "report.md").is_file() and (disk / "gallery" / "1.png").is_file()
        assert outputs.read_marker(disk)["files"] == ["gallery", "report.md"]
    assert temps(disk) == [] and sorted(e.name for e in tmp_path.iterdir()) == ["disk2", "report"]


def test_waiting_for_a_slow_sibling_takes_no_timing(tmp_path: Path):
    """The sibling's temp stays while its process lives, however long it takes (no age rule)."""
    mine = fileio.make_temp_dir(tmp_path, "bundle")
    old = time.time() - 10 * 24 * 3600
    os.utime(mine, (old, old))
    fileio.remove_stale_temps(tmp_path, "bundle")
    assert mine.is_dir()
