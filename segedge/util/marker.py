"""The ownership marker ``.segedge.json``: its format, and reading and writing it safely.

This is its own module because the marker is a file format with its own rules (which kinds exist, which
names a marker may list), read on its own by code that decides nothing (a run's resume, quant-report's
bundle check), while ``segedge.util.outputs`` holds the decision built on it: may a command write this folder.

Every folder segedge writes (``data synth`` dataset, ``train`` run, ``export`` bundle, ``bench`` report,
``quant-report --out`` quant report, ``predict --out`` predictions) holds a small marker::

    {"kind": "bundle", "segedge": "0.1.0", "created": "2026-11-29T23:10:00+00:00",
     "files": ["manifest.json", "model_fp32.tflite", "reference.npz"]}

``kind`` says which command wrote the folder, ``files`` the top-level entries segedge wrote into it (a
predictions folder lists each file it wrote by its relative path, ``sub/photo.png``: predict mirrors
sub-folders the user may share). A name another segedge command adds later (``ALSO_OWNED``: quant-report's
files in a bundle) is segedge's only once that command recorded it there. Anything else in the folder is
the user's, and no segedge command ever deletes or replaces it. A marker that cannot be read, has an
unknown kind or lists a name that could lead outside the folder counts as no marker at all.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from segedge import __version__
from segedge.util import fileio

MARKER = ".segedge.json"
Kind = Literal["dataset", "run", "bundle", "report", "quant-report", "predictions"]
KINDS: tuple[str, ...] = ("dataset", "run", "bundle", "report", "quant-report", "predictions")
# How a message names an output of each kind ("already holds a segedge run").
NOUNS = {"dataset": "dataset", "run": "run", "bundle": "bundle", "report": "bench report",
         "quant-report": "quant report", "predictions": "predictions folder"}
# Names other segedge commands may add to an existing output later (``segedge quant-report`` writes into
# the bundle; the names are segedge.quant.report's REPORT_JSON/MD/PNG). They are segedge's only once that
# command recorded them in the marker: a quant_report.md the user put in a bundle stays the user's.
ALSO_OWNED: dict[str, tuple[str, ...]] = {"bundle": ("quant_report.json", "quant_report.md", "quant_report.png")}
# Kinds whose marker owns each file by its relative path (sub/photo.png), not whole top-level entries.
PER_FILE: tuple[str, ...] = ("predictions",)


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
    valid = name_check(data["kind"])
    if not isinstance(files, list) or not all(valid(f) for f in files):
        return None
    return data


def plain_name(name: object) -> bool:
    """One entry directly in the folder: a marker naming '..' or 'a/b' must never steer a deletion."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and os.sep not in name


def relative_name(name: object) -> bool:
    """A relative path inside the folder ('sub/photo.png'): never absolute, never '..', '.' or empty parts."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name or name.startswith("/"):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def name_check(kind: str) -> Callable[[object], bool]:
    """Which names a marker of ``kind`` may list: relative paths for a per-file kind, else plain names."""
    return relative_name if kind in PER_FILE else plain_name


def write_marker(folder: str | os.PathLike[str], kind: str, files: Iterable[str] = ()) -> None:
    """Write (or rewrite) ``folder/.segedge.json`` for an output of ``kind`` owning ``files``."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    old = read_marker(folder)
    created = old["created"] if old and old["kind"] == kind and "created" in old else _now()
    fileio.write_json(Path(folder) / MARKER, {"kind": kind, "segedge": __version__, "created": created,
                                              "files": sorted(set(files) - {MARKER})})


def add_to_marker(folder: str | os.PathLike[str], kind: str, names: Iterable[str]) -> None:
    """Add ``names`` (entries just written) to the marker's ``files``, reading the marker as it is now so a
    concurrent writer's records are kept; a name the kind may not list is dropped."""
    marker = read_marker(folder)
    listed = marker["files"] if marker and marker["kind"] == kind else []
    valid = name_check(kind)
    write_marker(folder, kind, [*listed, *(n for n in names if valid(n))])


def owned(marker: dict[str, Any] | None) -> frozenset[str]:
    """What the marker lists, and only that (a name segedge merely might have written proves nothing)."""
    return frozenset(marker.get("files", []) if marker else [])


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
