"""May segedge write this output folder? One rule for every command, and the marker that proves ownership.

Every folder segedge writes (``data synth`` dataset, ``train`` run, ``export`` bundle, ``bench`` report,
``predict --out`` predictions) holds a small marker, ``.segedge.json``::

    {"kind": "bundle", "segedge": "0.1.0", "created": "2026-11-29T23:10:00+00:00",
     "files": ["manifest.json", "model_fp32.tflite", "reference.npz"]}

``kind`` says which command wrote the folder, ``files`` the top-level entries segedge wrote into it
(plus, per kind, the names other segedge commands add later: ``ALSO_OWNED``). Anything else in the folder
is the user's, and no segedge command ever deletes or replaces it.

``claim(path, kind, overwrite)`` decides, before any slow work, whether a command may write ``path``:

- missing: created;
- an existing empty folder: used as is, no ``--overwrite`` needed;
- a folder whose marker has the same kind: replaced, only with ``--overwrite`` (else "already holds a segedge
  <kind>; pass --overwrite to replace it"). Only the entries the marker owns are removed. A folder built
  whole and swapped in (dataset, bundle) is refused when it also holds files segedge did not write; a
  folder written in place (run, report) keeps them. Predictions are the one kind written file by file
  (``reuse=True``): a marked predictions folder is accepted as it is, new masks are added, and only masks
  segedge wrote there before may be replaced (the caller checks its targets with ``Claim.owns``);
- anything else is refused: a file (never replaced by a folder), a folder without the marker (the message
  names what it holds), a marker of another kind (even with ``--overwrite``), the current folder or one of
  its parents, the home folder, a filesystem root.

Refusals are ``OutputError`` (exit 8). Writing then goes through ``build`` (atomic: a temporary sibling
swapped in, the decision checked again just before the swap) or ``writing`` / ``Claim.prepare`` (in place).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from segedge import __version__, fileio
from segedge.errors import OutputError

MARKER = ".segedge.json"
Kind = Literal["dataset", "run", "bundle", "report", "predictions"]
KINDS: tuple[str, ...] = ("dataset", "run", "bundle", "report", "predictions")
# How a message names an output of each kind ("already holds a segedge run").
NOUNS = {"dataset": "dataset", "run": "run", "bundle": "bundle", "report": "bench report",
         "predictions": "predictions folder"}
# Names other segedge commands add to an existing output later (``segedge quant-report`` writes into the
# bundle; the names are segedge.quant.report's REPORT_JSON/MD/PNG).
ALSO_OWNED: dict[str, tuple[str, ...]] = {"bundle": ("quant_report.json", "quant_report.md", "quant_report.png")}
# Kinds written whole into a temporary folder and swapped in: the swap removes the old folder entirely.
SWAPPED: tuple[str, ...] = ("dataset", "bundle")
State = Literal["new", "empty", "replace", "reuse"]
MAX_NAMED = 5


def read_marker(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of ``folder`` when it is a valid one, else None (a broken marker proves nothing)."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        return None
    files = data.get("files", [])
    if not isinstance(files, list) or not all(_plain_name(f) for f in files):
        return None
    return data


def _plain_name(name: object) -> bool:
    """One entry directly in the folder: a marker naming '..' or 'a/b' must never steer a deletion."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and os.sep not in name


def write_marker(folder: str | os.PathLike[str], kind: str, files: Iterable[str] = ()) -> None:
    """Write (or rewrite) ``folder/.segedge.json`` for an output of ``kind`` owning ``files``."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    old = read_marker(folder)
    created = old["created"] if old and old["kind"] == kind and "created" in old else _now()
    fileio.write_json(Path(folder) / MARKER, {"kind": kind, "segedge": __version__, "created": created,
                                              "files": sorted(set(files) - {MARKER})})


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _owned(kind: str, marker: dict[str, Any] | None) -> frozenset[str]:
    listed = marker.get("files", []) if marker else []
    return frozenset([*listed, *ALSO_OWNED.get(kind, ())])


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

    def owns(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` lies in an entry the existing marker owns (segedge wrote it; it may be replaced)."""
        try:
            relative = Path(path).absolute().relative_to(self.path)
        except ValueError:
            return False
        return bool(relative.parts) and relative.parts[0] in self.owned

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
            write_marker(self.path, self.kind, [*files, *(self.owned if self.state == "reuse" else ())])
        except BaseException:
            fileio.remove_empty(self._created)
            raise
        return self.path

    def record(self, names: Iterable[str]) -> None:
        """Add ``names`` (top-level entries just written) to the marker's ``files``."""
        marker = read_marker(self.path) or {"files": []}
        write_marker(self.path, self.kind, [*marker["files"], *names])

    def undo(self, names: Iterable[str] = ()) -> None:
        """A start that failed: remove ``names`` this call wrote, the marker (unless the folder was a marked
        output before) and the folders this call created, so the same command can simply run again."""
        marker = read_marker(self.path)
        owned = set(marker["files"]) if marker else set()
        for name in names:
            if name in owned:
                _remove(self.path / name)
        if self.state in ("new", "empty"):
            (self.path / MARKER).unlink(missing_ok=True)
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
        return Claim(final, kind, "reuse", overwrite, _owned(kind, marker))
    if not overwrite:
        raise OutputError(f"{path}: already holds a segedge {noun}; {hint}pass --overwrite to replace it")
    result = Claim(final, kind, "replace", overwrite, _owned(kind, marker))
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
        write_marker(tmp, target.kind, (e.name for e in tmp.iterdir()))
        claim(target.path, target.kind, target.overwrite)


@contextlib.contextmanager
def writing(target: Claim, files: Iterable[str] = ()) -> Iterator[Path]:
    """Write into ``target`` in place: ``prepare``, then record every new top-level entry in the marker.

    When the body fails before writing anything, ``undo`` leaves the path as it was (a folder this call
    created is removed).
    """
    folder = target.prepare(files)
    before = {e.name for e in folder.iterdir()}
    try:
        yield folder
    except BaseException:
        new = _new_entries(folder, before)
        if new:
            target.record(new)
        else:
            target.undo()
        raise
    new = _new_entries(folder, before)
    if new:
        target.record(new)


def _new_entries(folder: Path, before: set[str]) -> list[str]:
    if not folder.is_dir():
        return []
    return [e.name for e in folder.iterdir() if e.name not in before and not _is_temp(e.name)]
