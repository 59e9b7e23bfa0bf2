"""The download cache's ownership marker: which files in segedge's cache folder segedge downloaded.

Why a marker: segedge deletes only what it downloaded. The cache may be a folder the user shares
with their own files (``SEGEDGE_CACHE`` can point anywhere, and users drop archives there), so
segedge owns only what it lists in ``CACHE/.segedge-downloads.json`` (name, and for a finished
file its size and mtime, so a file the user put over it later is theirs again): every name is
recorded before segedge writes it. Only listed files are ever resumed or deleted (``discard``). A
file of the same name that is not listed is the user's: it is read, never written to or deleted;
when a download has to take its name it is renamed aside (``_set_aside``), never over another file.

The marker is rewritten atomically under an exclusive ``flock`` on the folder; an unreadable or
malformed marker owns nothing, so the worst a damaged marker can do is keep a file, never delete
one. The HTTP side (resume, verify, retry) is ``segedge.data.download``.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from segedge import __version__
from segedge.util import fileio
from segedge.util.errors import OutputError

MARKER = ".segedge-downloads.json"  # in the cache folder: the files segedge downloaded there
PART_SUFFIX = ".part"  # a download in progress: CACHE/<name>.part, renamed to CACHE/<name> once verified


def cache_dir() -> Path:
    """``$SEGEDGE_CACHE``, else ``$XDG_CACHE_HOME/segedge/downloads`` (``~/.cache/...``)."""
    explicit = os.environ.get("SEGEDGE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "segedge" / "downloads"


def _read_marker(folder: Path) -> dict[str, dict]:
    """The marker's entries; an unreadable or malformed marker owns nothing (so nothing is deleted)."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {name: entry for name, entry in files.items()
            if isinstance(name, str) and "/" not in name and isinstance(entry, dict)}


def _write_marker(folder: Path, files: dict[str, dict]) -> None:
    """Rewrite the marker (atomically); with nothing left to own, remove it."""
    files = {name: entry for name, entry in files.items() if (folder / name).exists()}
    if not files:
        (folder / MARKER).unlink(missing_ok=True)
        return
    fileio.write_json(folder / MARKER, {"segedge": __version__, "files": dict(sorted(files.items()))})


@contextlib.contextmanager
def _marker(folder: Path):
    """The marker's entries, to update in place and write back; one process at a time (flock)."""
    lock = None
    try:
        import fcntl

        lock = os.open(folder, os.O_RDONLY)
        fcntl.flock(lock, fcntl.LOCK_EX)
    except (ImportError, OSError):
        pass  # no flock here: a lost update only forgets a file, which is then kept, never deleted
    try:
        files = _read_marker(folder)
        yield files
        _write_marker(folder, files)
    finally:
        if lock is not None:
            os.close(lock)


def _stamp(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _record(path: Path, *, partial: bool = False) -> None:
    """List ``path`` as segedge's; a partial download's file is created (empty) here, under the lock."""
    with _marker(path.parent) as files:
        if partial:
            path.touch()
        files[path.name] = {"partial": True} if partial else _stamp(path)


def _forget(path: Path) -> None:
    with _marker(path.parent) as files:
        files.pop(path.name, None)


def owns(path: str | os.PathLike[str]) -> bool:
    """Whether segedge downloaded ``path`` (listed in its folder's marker, unchanged since)."""
    path = Path(path)
    entry = _read_marker(path.parent).get(path.name)
    if entry is None or not path.is_file() or path.is_symlink():
        return False
    if entry.get("partial") is True:
        return path.name.endswith(PART_SUFFIX)
    try:
        return _stamp(path) == {"size": entry.get("size"), "mtime_ns": entry.get("mtime_ns")}
    except OSError:
        return False


def discard(path: str | os.PathLike[str]) -> bool:
    """Delete ``path`` if segedge downloaded it (``owns``); a file it did not download stays. True if deleted."""
    path = Path(path)
    if not owns(path):
        return False
    path.unlink(missing_ok=True)
    _forget(path)
    return True


def _set_aside(path: Path, suffix: str) -> Path:
    """Rename a user's file out of a download's way, never over another file; the new path."""
    for n in range(1000):
        aside = path.with_name(f"{path.name}{suffix}" + (f".{n}" if n else ""))
        if not aside.exists() and not aside.is_symlink():
            os.rename(path, aside)
            return aside
    raise OutputError(f"{path}: cannot rename it aside ({suffix}.0-999 are all taken); move it away")
