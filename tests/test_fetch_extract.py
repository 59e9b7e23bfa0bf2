"""Unpacking an archive never writes outside its destination, with or without tarfile's filters.

Raspberry Pi OS Bookworm ships Python 3.11.2, whose tarfile has no extraction filters
(``filter="data"``, ``TarInfo.replace`` and ``tarfile.FilterError`` came with 3.11.4/3.12).
Every case runs twice: on this Python as it is, and on a simulated 3.11.2 (those names removed,
``TarFile.extract`` without a ``filter`` argument and with the old trusting behaviour), so the
checks segedge makes itself are what keeps each unsafe member out.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import test_fetch as shared
from test_fetch import _cli, _error_lines, _leftovers, _register

from segedge.data import fetch as fetch_module
from segedge.data.fetch import UnsafeMember, extract

PREFIX = "VOCdevkit/VOC2012"
private_caches = shared.private_caches


@pytest.fixture(params=["with-filters", "without-filters"])
def python(request, monkeypatch) -> str:
    """Which tarfile the code meets; 'without-filters' is a stand-in for Python 3.11.2."""
    real_extract = tarfile.TarFile.extract
    calls: list[dict] = []

    if request.param == "with-filters":
        if not hasattr(tarfile, "data_filter"):
            pytest.skip("this Python's tarfile has no extraction filters")

        def recording(self, member, path="", *args, **kwargs):
            calls.append(kwargs)
            return real_extract(self, member, path, *args, **kwargs)

        monkeypatch.setattr(tarfile.TarFile, "extract", recording)
    else:
        for name in ("data_filter", "FilterError", "fully_trusted_filter", "tar_filter"):
            monkeypatch.delattr(tarfile, name, raising=False)
        monkeypatch.delattr(tarfile.TarInfo, "replace", raising=False)

        def old_extract(self, member, path="", set_attrs=True, *, numeric_owner=False):  # 3.11.2's signature
            calls.append({"numeric_owner": numeric_owner})
            if "filter" in real_extract.__code__.co_varnames:  # the trusting behaviour 3.11.2 has
                return real_extract(self, member, path, set_attrs, numeric_owner=numeric_owner,
                                    filter="fully_trusted")
            return real_extract(self, member, path, set_attrs, numeric_owner=numeric_owner)

        monkeypatch.setattr(tarfile.TarFile, "extract", old_extract)
    request.node.extract_calls = calls
    return request.param


def _member(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"",
            linkname: str = "", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, mode, 1_300_000_000
    info.uid = info.gid = 4321
    info.uname = info.gname = "someone"
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _archive(path: Path, members: list[tuple]) -> Path:
    with tarfile.open(path, "w") as tar:
        _member(tar, f"{PREFIX}/JPEGImages/a.jpg", data=b"an image")
        for args in members:
            _member(tar, *args)
    return path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _unsafe_cases(tmp_path: Path) -> dict[str, list[tuple]]:
    outside = tmp_path / "outside"
    return {
        "absolute name": [(str(outside / "abs.txt"), tarfile.REGTYPE, b"x")],
        "absolute name under the prefix": [(f"/{PREFIX}/abs.txt", tarfile.REGTYPE, b"x")],
        "dotdot": [(f"{PREFIX}/../../../outside/up.txt", tarfile.REGTYPE, b"x")],
        "dotdot that stays inside": [(f"{PREFIX}/JPEGImages/../b.jpg", tarfile.REGTYPE, b"x")],
        "absolute symlink": [(f"{PREFIX}/link", tarfile.SYMTYPE, b"", str(outside)),
                             (f"{PREFIX}/link/through.txt", tarfile.REGTYPE, b"x")],
        "relative symlink out": [(f"{PREFIX}/JPEGImages/link", tarfile.SYMTYPE, b"", "../../outside"),
                                 (f"{PREFIX}/JPEGImages/link/through.txt", tarfile.REGTYPE, b"x")],
        "symlink chain out": [(f"{PREFIX}/d/up", tarfile.SYMTYPE, b"", ".."),  # -> the destination: fine
                              (f"{PREFIX}/d/up/esc", tarfile.SYMTYPE, b"", "../outside")],  # -> beside it
        "hardlink outside the prefix": [("elsewhere/secret.txt", tarfile.REGTYPE, b"secret"),
                                        (f"{PREFIX}/hard", tarfile.LNKTYPE, b"", "elsewhere/secret.txt")],
        "hardlink dotdot": [(f"{PREFIX}/hard", tarfile.LNKTYPE, b"", f"{PREFIX}/../../outside/victim.txt")],
        "absolute hardlink": [(f"{PREFIX}/hard", tarfile.LNKTYPE, b"", str(outside / "victim.txt"))],
        "character device": [(f"{PREFIX}/null", tarfile.CHRTYPE)],
        "block device": [(f"{PREFIX}/disk", tarfile.BLKTYPE)],
        "fifo": [(f"{PREFIX}/pipe", tarfile.FIFOTYPE)],
    }


CASES = list(_unsafe_cases(Path("/x")))
WORDING = {"absolute name": "absolute path", "absolute name under the prefix": "absolute path",
           "dotdot": "'..'", "dotdot that stays inside": "'..'", "absolute symlink": "absolute path",
           "relative symlink out": "outside the destination", "symlink chain out": "outside the destination",
           "hardlink outside the prefix": "hard link", "hardlink dotdot": "'..'", "absolute hardlink": "absolute path",
           "character device": "character device", "block device": "block device", "fifo": "fifo"}


@pytest.mark.parametrize("case", CASES)
def test_an_unsafe_member_refuses_the_archive_and_nothing_lands_outside(case, python, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("untouched")
    archive = _archive(tmp_path / "evil.tar", _unsafe_cases(tmp_path)[case])
    out = tmp_path / "work" / "out"
    out.mkdir(parents=True)
    before = _tree(tmp_path)
    with pytest.raises(UnsafeMember) as caught:
        extract(archive, PREFIX, out)
    message = caught.value.message
    assert message.startswith(f"{archive}: refusing an unsafe archive member: ") and "\n" not in message
    assert WORDING[case] in message
    assert _tree(outside) == {"victim.txt"} and (outside / "victim.txt").read_text() == "untouched"
    assert {p for p in _tree(tmp_path) - before if not p.startswith("work/out/")} == set()
    for path in out.rglob("*"):  # what was unpacked before the refusal stays inside
        assert os.path.realpath(path).startswith(str(out.resolve()) + os.sep) or path.is_symlink()


def test_safe_links_modes_and_owners(python, request, tmp_path):
    archive = _archive(tmp_path / "ok.tar", [
        (f"{PREFIX}/JPEGImages", tarfile.DIRTYPE, b"", "", 0o777),
        (f"{PREFIX}/JPEGImages/alias.jpg", tarfile.SYMTYPE, b"", "a.jpg"),
        (f"{PREFIX}/JPEGImages/same.jpg", tarfile.LNKTYPE, b"", f"{PREFIX}/JPEGImages/a.jpg"),
        (f"{PREFIX}/run.sh", tarfile.REGTYPE, b"#!/bin/sh\n", "", 0o6777),  # setuid, setgid, world-writable
        (f"{PREFIX}/locked.txt", tarfile.REGTYPE, b"ro", "", 0o400),
        ("README-outside-the-prefix", tarfile.REGTYPE, b"skipped"),
    ])
    out = tmp_path / "out"
    out.mkdir()
    assert extract(archive, PREFIX, out) == 6
    images = out / "JPEGImages"
    assert (images / "alias.jpg").is_symlink() and (images / "alias.jpg").read_bytes() == b"an image"
    assert (images / "same.jpg").read_bytes() == b"an image" and not (images / "same.jpg").is_symlink()
    run = stat.S_IMODE((out / "run.sh").stat().st_mode)
    assert run & (stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH) == 0 and run & stat.S_IXUSR
    assert stat.S_IMODE((out / "locked.txt").stat().st_mode) & 0o600 == 0o600  # the owner can read and write
    assert stat.S_IMODE(images.stat().st_mode) & (stat.S_IWGRP | stat.S_IWOTH) == 0
    assert (out / "run.sh").stat().st_uid == os.getuid()  # ownership is not taken from the archive
    assert sorted(p.name for p in out.iterdir()) == ["JPEGImages", "locked.txt", "run.sh"]
    calls = request.node.extract_calls
    if python == "with-filters":
        assert calls and all(call.get("filter") == "data" for call in calls)
    else:
        assert calls and all("filter" not in call for call in calls)


def test_fetch_from_an_unsafe_archive_is_one_line_and_leaves_no_dest(python, voc_tar, tmp_path, monkeypatch):
    """The CLI end to end, with an archive that passes the (patched) checksum but hides a '..' member."""
    buffer = io.BytesIO(voc_tar)
    with tarfile.open(fileobj=buffer, mode="a") as tar:
        _member(tar, f"{PREFIX}/../../escaped.txt", data=b"x")
    data = buffer.getvalue()
    archive = tmp_path / "VOCtrainval_11-May-2012.tar"
    archive.write_bytes(data)
    _register(monkeypatch, "voc2012", "http://127.0.0.1:9/unused", data)
    assert fetch_module.SOURCES["voc2012"].checksum.hexdigest == hashlib.md5(data).hexdigest()
    dest = tmp_path / "data" / "VOC2012"
    result = _cli("data", "fetch", "voc2012", str(dest), "--from", str(archive))
    assert result.exit_code == 3, result.output
    [line] = _error_lines(result.output)
    assert "refusing an unsafe archive member" in line and "escaped.txt" in line
    assert not dest.exists() and _leftovers(tmp_path / "data") == []
    assert not list(tmp_path.rglob("escaped.txt")) and archive.read_bytes() == data


def test_fetch_on_a_python_without_filters_unpacks_voc(python, voc_tar, voc_source, tmp_path, monkeypatch):
    archive = tmp_path / "VOCtrainval_11-May-2012.tar"
    archive.write_bytes(voc_tar)
    _register(monkeypatch, "voc2012", "http://127.0.0.1:9/unused", voc_tar)
    dest = tmp_path / "VOC2012"
    result = _cli("data", "fetch", "voc2012", str(dest), "--from", str(archive))
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("ok")
    for path in voc_source.rglob("*.jpg"):
        assert (dest / path.relative_to(voc_source)).read_bytes() == path.read_bytes()


voc_tar, voc_source = shared.voc_tar, shared.voc_source
