"""The download cache is shared with the user: segedge deletes only what it downloaded itself.

``$SEGEDGE_CACHE`` may be any folder, and users drop archives into it. segedge lists what it
downloaded in the folder's marker (``.segedge-downloads.json``); everything else there is the
user's: used when its checksum matches, never deleted, renamed aside (not deleted) only once a
verified download needs its name, and never touched by a run that fails before that.
Everything stays on 127.0.0.1 (the local server of ``test_fetch``).
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import test_fetch as shared
from test_fetch import _cli, _error_lines, _leftovers, _register

from segedge.data import download as download_module
from segedge.data.check import check_dataset
from segedge.data.download import MARKER, cache_dir, discard, owns
from segedge.util.errors import ConfigError, OutputError

NAME = "VOCtrainval_11-May-2012.tar"
# test_fetch's local server, private caches and synthetic VOC tar
served, closed_port, private_caches = shared.served, shared.closed_port, shared.private_caches
voc_source, voc_tar = shared.voc_source, shared.voc_tar
sbd_masks, sbd_tgz = shared.sbd_masks, shared.sbd_tgz


def _listed() -> list[str]:
    marker = cache_dir() / MARKER
    return sorted(json.loads(marker.read_text())["files"]) if marker.exists() else []


def test_an_archive_the_user_put_in_the_cache_is_used_and_kept(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    mine = cache_dir() / NAME
    mine.parent.mkdir(parents=True)
    mine.write_bytes(voc_tar)
    result = _cli("data", "fetch", "voc2012", str(tmp_path / "VOC2012"))
    assert result.exit_code == 0, result.output
    assert served.requests == []  # no download: the user's copy matched
    assert mine.read_bytes() == voc_tar and f"archive kept: {mine}" in result.output
    assert _leftovers(cache_dir()) == [NAME] and not owns(mine)  # nothing of segedge's was added
    assert check_dataset(tmp_path / "VOC2012").ok


def test_sbd_uses_and_keeps_a_users_archive_and_deletes_its_own_download(served, voc_tar, sbd_tgz, tmp_path,
                                                                         monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    _register(monkeypatch, "sbd", served.add("/benchmark.tgz", sbd_tgz), sbd_tgz, size=None)
    mine = cache_dir() / "benchmark.tgz"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(sbd_tgz)
    dest = tmp_path / "VOC2012"
    assert _cli("data", "fetch", "voc2012", str(dest)).exit_code == 0  # downloaded, then deleted
    result = _cli("data", "fetch", "sbd", str(dest))
    assert result.exit_code == 0, result.output
    assert served.requests == [("/voc.tar", None)] and mine.read_bytes() == sbd_tgz
    assert _leftovers(cache_dir()) == ["benchmark.tgz"] and f"archive kept: {mine}" in result.output


def test_a_wrong_md5_user_file_is_not_touched_when_the_network_is_unreachable(voc_tar, closed_port, tmp_path,
                                                                              monkeypatch):
    _register(monkeypatch, "voc2012", f"http://127.0.0.1:{closed_port}/voc.tar", voc_tar)
    mine = cache_dir() / NAME
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's own bytes")
    before = mine.stat()
    result = _cli("data", "fetch", "voc2012", str(tmp_path / "VOC2012"))
    assert result.exit_code == 3
    [line] = _error_lines(result.output)
    assert "refused" in line and f"{mine} was left as it is" in line
    assert f"md5 is {hashlib.md5(mine.read_bytes()).hexdigest()}, not the published" in line
    assert mine.read_bytes() == b"the user's own bytes" and mine.stat().st_mtime_ns == before.st_mtime_ns
    assert _leftovers(cache_dir()) == [NAME]  # no marker, no .part, nothing renamed
    assert not (tmp_path / "VOC2012").exists()


@pytest.mark.parametrize("taken", [False, True], ids=["free", "suffix-taken"])
def test_a_wrong_md5_user_file_is_renamed_aside_once_a_verified_download_arrived(taken, served, voc_tar, tmp_path,
                                                                                  monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    mine = cache_dir() / NAME
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"a truncated copy")
    if taken:
        (cache_dir() / f"{NAME}.md5-mismatch").write_bytes(b"an older one")
    result = _cli("data", "fetch", "voc2012", str(tmp_path / "VOC2012"))
    assert result.exit_code == 0, result.output
    aside = cache_dir() / (f"{NAME}.md5-mismatch.1" if taken else f"{NAME}.md5-mismatch")
    assert aside.read_bytes() == b"a truncated copy"
    assert f"renamed to {aside}" in result.output and f"note: {mine} is not a file segedge downloaded" in result.output
    assert "not deleted" in result.output and "md5 is" in result.output
    assert not mine.exists()  # the verified download took the name, was unpacked and deleted (it was segedge's)
    expected = sorted([aside.name] + ([f"{NAME}.md5-mismatch"] if taken else []))
    assert _leftovers(cache_dir()) == expected
    if taken:
        assert (cache_dir() / f"{NAME}.md5-mismatch").read_bytes() == b"an older one"
    assert check_dataset(tmp_path / "VOC2012").ok


def test_segedge_deletes_its_own_download_and_only_while_it_is_unchanged(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    kept = _cli("data", "fetch", "voc2012", str(tmp_path / "a"), "--keep-archive")
    assert kept.exit_code == 0, kept.output
    archive = cache_dir() / NAME
    assert owns(archive) and _listed() == [NAME] and len(served.requests) == 1
    again = _cli("data", "fetch", "voc2012", str(tmp_path / "b"))  # reuses segedge's copy, then deletes it
    assert again.exit_code == 0, again.output
    assert len(served.requests) == 1 and "downloaded archive deleted" in again.output
    assert _leftovers(cache_dir()) == []  # the marker goes with the last file it listed

    third = _cli("data", "fetch", "voc2012", str(tmp_path / "c"), "--keep-archive")
    assert third.exit_code == 0 and owns(archive)
    archive.write_bytes(voc_tar)  # the user copies their own archive over segedge's: now it is theirs
    os.utime(archive, ns=(1_000_000_000, 1_000_000_000))
    assert not owns(archive) and not discard(archive) and archive.exists()
    fourth = _cli("data", "fetch", "voc2012", str(tmp_path / "d"))
    assert fourth.exit_code == 0, fourth.output
    assert archive.read_bytes() == voc_tar and f"archive kept: {archive}" in fourth.output
    assert len(served.requests) == 2


def test_segedge_own_download_gone_bad_is_fetched_again(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    assert _cli("data", "fetch", "voc2012", str(tmp_path / "a"), "--keep-archive").exit_code == 0
    archive = cache_dir() / NAME
    stat = archive.stat()
    with open(archive, "r+b") as handle:  # bit rot: same size, same mtime
        handle.write(b"X")
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert owns(archive)
    result = _cli("data", "fetch", "voc2012", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    assert len(served.requests) == 2 and "md5-mismatch" not in result.output
    assert _leftovers(cache_dir()) == []


def test_a_part_file_segedge_did_not_start_is_neither_resumed_nor_deleted(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    part = cache_dir() / f"{NAME}.part"  # e.g. a browser's unfinished download, SEGEDGE_CACHE=~/Downloads
    part.parent.mkdir(parents=True)
    part.write_bytes(voc_tar[:100])
    result = _cli("data", "fetch", "voc2012", str(tmp_path / "VOC2012"))
    assert result.exit_code == OutputError.exit_code
    [line] = _error_lines(result.output)
    assert str(part) in line and "no record of" in line and "move it" in line
    assert part.read_bytes() == voc_tar[:100] and served.requests == [] and _leftovers(cache_dir()) == [part.name]


def test_a_malformed_marker_owns_nothing(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    archive = cache_dir() / NAME
    archive.parent.mkdir(parents=True)
    archive.write_bytes(voc_tar)
    for text in ("not json", '{"files": ["a list"]}', json.dumps({"files": {NAME: {"size": len(voc_tar)}}})):
        (cache_dir() / MARKER).write_text(text)
        assert not owns(archive) and not discard(archive)
    result = _cli("data", "fetch", "voc2012", str(tmp_path / "VOC2012"))
    assert result.exit_code == 0, result.output
    assert archive.read_bytes() == voc_tar


def test_download_never_hands_a_users_file_to_a_caller_that_consumes_it(served, tmp_path):
    """Without reuse_foreign (the ImageNet weights, which train deletes after copying) a user's file
    of the same name is never returned: the download takes the name, the user's file is renamed aside."""
    url = served.add("/w.h5", b"weights")
    target = tmp_path / "cache" / "w.h5"
    target.parent.mkdir()
    target.write_bytes(b"the user's file")
    got = download_module.download(url, target, checksum=None, hint="hint")
    assert got == target and target.read_bytes() == b"weights" and owns(target)
    assert (tmp_path / "cache" / "w.h5.not-from-segedge").read_bytes() == b"the user's file"
    assert discard(target) and _leftovers(tmp_path / "cache") == ["w.h5.not-from-segedge"]


# -- --from ----------------------------------------------------------------------------------------

def test_from_a_folder_holding_the_archive(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.base + "/official-is-down.tar", voc_tar)
    folder = tmp_path / "Downloads"
    folder.mkdir()
    (folder / NAME).write_bytes(voc_tar)
    result = _cli("data", "fetch", "voc2012", str(tmp_path / "VOC2012"), "--from", str(folder))
    assert result.exit_code == 0, result.output
    assert (folder / NAME).read_bytes() == voc_tar and served.requests == []
    assert f"archive kept: {folder / NAME}" in result.output


@pytest.mark.parametrize("case", ["empty folder", "missing path", "not a file"])
def test_from_a_path_without_the_archive_is_one_line_naming_it(case, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", "http://127.0.0.1:9/unused", voc_tar)
    given = {"empty folder": tmp_path / "empty", "missing path": tmp_path / "nope.tar",
             "not a file": tmp_path / "fifo"}[case]
    if case == "empty folder":
        given.mkdir()
    elif case == "not a file":
        os.mkfifo(given)
    result = _cli("data", "fetch", "voc2012", str(tmp_path / "VOC2012"), "--from", str(given))
    assert result.exit_code == ConfigError.exit_code
    [line] = _error_lines(result.output)
    assert line.startswith(f"error: --from {given}: ") and f"--from takes the {NAME}" in line
    wording = {"empty folder": "holds no", "missing path": "no such file", "not a file": "not a regular file"}
    assert wording[case] in line
    assert not (tmp_path / "VOC2012").exists()
