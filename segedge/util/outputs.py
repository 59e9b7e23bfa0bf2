"""May segedge write this output folder? One rule for every command, built on the ownership marker.

Every folder segedge writes holds a marker, ``.segedge.json`` (``segedge.util.marker``: its format, and why it
is a module of its own), listing what segedge wrote there. Anything else in the folder is the user's,
and no segedge command ever deletes or replaces it. The marker's names stay importable from here.

``claim(path, kind, overwrite)`` decides, before any slow work, whether a command may write ``path``:

- missing: created;
- an existing empty folder: used as is, no ``--overwrite`` needed;
- a folder whose marker has the same kind: replaced, only with ``--overwrite`` (else "already holds a segedge
  <kind>; pass --overwrite to replace it"). Only the entries the marker owns are removed. A folder built
  whole and swapped in (dataset, bundle) is refused when it also holds files segedge did not write; a
  folder written in place (run, report, quant report) keeps them. Predictions are the one kind written file
  by file (``reuse=True``): a marked predictions folder is accepted as it is, new masks are added and
  recorded one by one once written (``recording``), and only files segedge wrote there before may be
  replaced (the caller checks its targets with ``Claim.owns``);
- anything else is refused: a file (never replaced by a folder), a folder without the marker (the message
  names what it holds), a marker of another kind (even with ``--overwrite``), the current folder or one of
  its parents, the home folder, a filesystem root.

Refusals are ``OutputError`` (exit 8). Writing then goes through ``build`` (atomic: a temporary sibling
swapped in, the decision checked again just before the swap) or ``writing`` / ``recording`` /
``Claim.prepare`` (in place). An output path that is a symbolic link is written through: the link's
target is what is swapped or written, the link stays.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from . import fileio
from .errors import OutputError
from .marker import ALSO_OWNED, KINDS, MARKER, NOUNS, PER_FILE, Kind, add_to_marker, read_marker, write_marker
from .marker import owned as _owned
from .marker import relative_name as _relative_name

__all__ = ["ALSO_OWNED", "FLUSH_SECONDS", "KINDS", "MARKER", "NOUNS", "PER_FILE", "SWAPPED", "Claim", "Kind",
           "Recorder", "State", "build", "claim", "claim_names", "describe_entries", "read_marker", "recording",
           "write_marker", "writing"]

# A per-file writer rewrites the marker at most this often (and once at the end): thousands of masks
# must not mean thousands of marker rewrites. A file written but not yet recorded when the process is
# killed stays unrecorded: the safe side (a later predict refuses to replace it, never the other way).
FLUSH_SECONDS = 0.5
# Kinds written whole into a temporary folder and swapped in: the swap removes the old folder entirely.
SWAPPED: tuple[str, ...] = ("dataset", "bundle")
State = Literal["new", "empty", "replace", "reuse"]
MAX_NAMED = 5


def _is_temp(name: str) -> bool:
    return name.startswith(fileio.TMP_PREFIX)


def describe_entries(entries: list[Path]) -> str:
    """'1 file' / '2 files and 1 folder (a.txt, b, c.png)': what a refused folder holds."""
    folders = sum(1 for e in entries if e.is_dir() and not e.is_symlink())
    files = len(entries) - folders
    parts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((files, "file"), (folders, "folder")) if n]
    names = sorted(e.name for e in entries)
    shown = ", ".join(names[:MAX_NAMED]) + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
    return f"{' and '.join(parts)} not written by segedge ({shown})"


def _protected(path: Path) -> str | None:
    """Why ``path`` may never be an output folder (the current folder, a parent of it, home, a root)."""
    real = path.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd:
        return "is the current folder"
    if cwd.is_relative_to(real):
        return "is a parent of the current folder"
    if real == Path.home().resolve():
        return "is your home folder"
    if real == Path(real.anchor):
        return "is a filesystem root"
    return None


@dataclass
class Claim:
    """The decision for one output path; ``prepare``/``build`` act on it."""

    path: Path                      # absolute, as the user spelled it (not resolved)
    kind: str
    state: State  # new: missing; empty: an empty folder; replace/reuse: a marked same-kind output (cleared/kept)
    overwrite: bool
    owned: frozenset[str] = frozenset()  # entries the existing marker owns (replace)
    _created: list[Path] = field(default_factory=list, repr=False)

    def foreign(self) -> list[Path]:
        """Entries of the folder segedge did not write (kept by in-place writers)."""
        if not self.path.is_dir():
            return []
        return [e for e in self.path.iterdir()
                if e.name != MARKER and e.name not in self.owned and not _is_temp(e.name)]

    def relative(self, path: str | os.PathLike[str]) -> str | None:
        """``path`` as the marker names it ('sub/photo.png'), or None when it is not a plain path inside
        the folder: outside it, the folder itself, or reached through a symbolic link inside it."""
        try:
            relative = Path(path).absolute().relative_to(self.path)
        except ValueError:
            return None
        name = PurePosixPath(*relative.parts).as_posix() if relative.parts else ""
        if not _relative_name(name):
            return None
        inner = self.path
        for part in relative.parts[:-1]:  # a link inside the folder leads out of it: never through one
            inner = inner / part
            if inner.is_symlink():
                return None
        return name

    def owns(self, path: str | os.PathLike[str]) -> bool:
        """Whether the existing marker owns ``path`` (segedge wrote it; it may be replaced). A per-file kind
        owns exactly the files it lists (an older marker listing a folder does not own a file inside
        it); the other kinds own whole top-level entries."""
        name = self.relative(path)
        if name is None:
            return False
        if self.kind in PER_FILE:
            return name in self.owned
        return name.split("/")[0] in self.owned

    def prepare(self, files: Iterable[str] = ()) -> Path:
        """Make the folder ready for an in-place writer: create it, remove the old output's own entries
        (replace), write the marker owning ``files``. A failure leaves what was there before."""
        try:
            self._created = fileio.make_dirs(self.path)
        except OSError as exc:
            raise fileio.output_error(self.path, exc) from exc
        try:
            if self.state == "replace":
                for name in sorted(self.owned):
                    _remove(self.path / name)
                fileio.remove_stale_temps(self.path)
            if self.state == "reuse":  # the marker as it is now: a concurrent writer's records stay
                self.record(files)
            else:
                write_marker(self.path, self.kind, files)
        except BaseException:
            fileio.remove_empty(self._created)
            raise
        return self.path

    def record(self, names: Iterable[str]) -> None:
        """Add ``names`` (entries just written: top-level names, or relative paths for a per-file kind) to
        the marker's ``files``; the marker as it is now, so a concurrent writer's records are kept."""
        add_to_marker(self.path, self.kind, names)

    def undo(self, names: Iterable[str] = ()) -> None:
        """A start that failed: remove ``names`` this call wrote, the marker (unless the folder was a marked
        output before) and the folders this call created, so the same command can simply run again."""
        marker = read_marker(self.path)
        owned = set(marker["files"]) if marker else set()
        removed = {name for name in names if name in owned}
        for name in sorted(removed):
            _remove(self.path / name)
        if self.state in ("new", "empty"):
            (self.path / MARKER).unlink(missing_ok=True)
        elif removed and marker and marker["kind"] == self.kind:  # the kept marker lists only what is there
            write_marker(self.path, self.kind, owned - removed)
        fileio.remove_stale_temps(self.path)
        fileio.remove_empty(self._created)


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    elif entry.exists() or entry.is_symlink():
        entry.unlink()


def claim(path: str | os.PathLike[str], kind: str, overwrite: bool = False, *, hint: str = "",
          reuse: bool = False) -> Claim:
    """Decide whether ``kind`` output may be written at ``path`` (see the module docstring); writes nothing.

    ``hint`` goes before "pass --overwrite" in the already-a-<kind> refusal (train: "continue it with
    --resume RUN, or "). ``reuse``: a marked folder of this kind is written into as it is (predictions).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    final = Path(path).expanduser().absolute()
    noun = NOUNS[kind]
    why = _protected(final)
    if why is not None:
        raise OutputError(f"{path}: {why}; choose a new or empty folder for the {noun}")
    if final.is_symlink() and not final.exists():
        raise OutputError(f"{path}: is a broken symbolic link; choose a new or empty folder for the {noun}")
    if not final.exists():
        return Claim(final, kind, "new", overwrite)
    if not final.is_dir():
        raise OutputError(f"{path}: is a file, not a folder; segedge never replaces a file with a folder. "
                          f"Choose a new or empty folder for the {noun}")
    try:
        entries = list(final.iterdir())
    except OSError as exc:
        raise fileio.output_error(final, exc) from exc
    if not entries:
        return Claim(final, kind, "empty", overwrite)
    marker = read_marker(final)
    if marker is None:
        raise OutputError(f"{path}: holds {describe_entries(entries)}; choose a new or empty folder for the {noun}")
    if marker["kind"] != kind:
        raise OutputError(f"{path}: holds a segedge {NOUNS[marker['kind']]}, not a {noun}; --overwrite only "
                          f"replaces a {noun}. Choose a new or empty folder")
    if reuse:
        return Claim(final, kind, "reuse", overwrite, _owned(marker))
    if not overwrite:
        raise OutputError(f"{path}: already holds a segedge {noun}; {hint}pass --overwrite to replace it")
    result = Claim(final, kind, "replace", overwrite, _owned(marker))
    foreign = result.foreign()
    if kind in SWAPPED and foreign:
        raise OutputError(f"{path}: holds a segedge {noun} and {describe_entries(foreign)}; --overwrite only "
                          "replaces what segedge wrote: move them out, or choose a new or empty folder")
    return result


@contextlib.contextmanager
def build(target: Claim) -> Iterator[Path]:
    """Build ``target`` whole under a temporary sibling, mark it, and swap it in (``fileio.atomic_dir``).

    The decision is taken again just before the swap (minutes may have passed): if the path now holds
    something else, the new folder is discarded and the path is left alone.
    """
    with fileio.atomic_dir(target.path) as tmp:
        yield tmp
        write_marker(tmp, target.kind, (e.name for e in tmp.iterdir() if not _is_temp(e.name)))
        claim(target.path, target.kind, target.overwrite)


@contextlib.contextmanager
def writing(target: Claim, files: Iterable[str] = (), *,
            only: Callable[[str], object] | None = None) -> Iterator[Path]:
    """Write into ``target`` in place: ``prepare``, then record every new top-level entry in the marker
    (with ``only``, every new file whose name it accepts: what the body is known to write).

    When the body fails before writing anything, ``undo`` leaves the path as it was (a folder this call
    created is removed).
    """
    folder = target.prepare(files)
    before = {e.name for e in folder.iterdir()}
    try:
        yield folder
    except BaseException:
        new = _new_entries(folder, before, only)
        if new:
            target.record(new)
        else:
            target.undo()
        raise
    new = _new_entries(folder, before, only)
    if new:
        target.record(new)


def _new_entries(folder: Path, before: set[str], only: Callable[[str], object] | None = None) -> list[str]:
    if not folder.is_dir():
        return []
    return [e.name for e in folder.iterdir() if e.name not in before and not _is_temp(e.name)
            and (only is None or (e.is_file() and not e.is_symlink() and only(e.name)))]


class Recorder:
    """Records each file as it is written (``add`` after the file is complete under its name), so the
    marker owns what segedge wrote and nothing it only planned. Thread-safe: predict writes from its
    writer thread. The marker is rewritten at most every ``FLUSH_SECONDS`` and by ``flush``."""

    def __init__(self, target: Claim) -> None:
        self.target = target
        self.count = 0
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    def add(self, path: str | os.PathLike[str]) -> None:
        name = self.target.relative(path)
        if name is None:
            return
        with self._lock:
            self._pending.add(name)
            self.count += 1
            if time.monotonic() - self._flushed >= FLUSH_SECONDS:
                self._flush()

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.target.record(self._pending)
            self._pending = set()
        self._flushed = time.monotonic()


@contextlib.contextmanager
def recording(target: Claim) -> Iterator[Recorder]:
    """Write file by file into ``target`` in place: ``prepare`` (nothing listed yet), then the body calls
    ``Recorder.add`` after each file it wrote; the marker lists exactly those. When the body fails
    before writing anything, ``undo`` leaves the path as it was."""
    target.prepare()
    recorder = Recorder(target)
    try:
        yield recorder
    except BaseException:
        recorder.flush()
        if not recorder.count:
            target.undo()
        raise
    recorder.flush()


def claim_names(path: str | os.PathLike[str], kind: str, names: Iterable[str]) -> Claim:
    """May another segedge command add ``names`` (``ALSO_OWNED[kind]``) to the existing ``kind`` output at
    ``path`` (quant-report into a bundle)? Writes nothing. Each name already there must be one the marker
    lists (segedge recorded it when it wrote it); a file of the user's under such a name is refused. The
    caller writes, then ``Claim.record``s the names it wrote."""
    final = Path(path).expanduser().absolute()
    noun = NOUNS[kind]
    allowed = ALSO_OWNED.get(kind, ())
    names = list(names)
    if any(n not in allowed for n in names):
        raise ValueError(f"{names} are not names another command adds to a {noun}")
    marker = read_marker(final)
    if marker is not None and marker["kind"] != kind:
        raise OutputError(f"{path}: holds a segedge {NOUNS[marker['kind']]}, not a {noun}")
    result = Claim(final, kind, "reuse", False, _owned(marker))
    for name in names:
        entry = final / name
        if (entry.exists() or entry.is_symlink()) and not result.owns(entry):
            raise OutputError(f"{entry}: not written by segedge, and it would be replaced; move it away, or "
                              "write elsewhere with --out DIR")
    return result
