"""Atomic writes: a file or folder appears whole under its final name or not at all."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segedge.errors import ModelError, OutputError

TMP_PREFIX = ".segedge-tmp-"


def _default_file_mode() -> int:
    """0o666 minus the umask: what ``open()`` would give, not mkstemp's private 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def output_error(path: Path, exc: OSError) -> OutputError:
    """An OSError from writing ``path`` as one line that names it and says why in words."""
    if exc.errno == errno.ENOSPC:
        why = "the disk is full"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "it is not writable (read-only or no permission)"
    else:
        why = exc.strerror or str(exc)
    return OutputError(f"{path}: cannot write: {why}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    The temporary file lives in the same folder so the final ``os.replace`` is
    atomic; on any failure it is removed and an existing ``path`` is untouched.
    """
    final = Path(path)
    created: list[Path] = []
    try:
        created = make_dirs(final.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=final.suffix, dir=final.parent)
        os.close(fd)
    except OSError as exc:
        remove_empty(created)
        raise output_error(final, exc) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        remove_empty(created)
        raise output_error(final, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_empty(created)
        raise


def make_dirs(folder: Path) -> list[Path]:
    """``mkdir -p folder``; the folders this call created, outermost first (``remove_empty`` undoes it)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Remove folders a failed write created, innermost first, if they are still empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it in for ``path``.

    A run killed midway leaves only a ``.segedge-tmp-*`` sibling (removed by the
    next run) and the previous folder intact. Whether ``path`` may be replaced at
    all is ``segedge.outputs.claim``'s decision, taken before this is entered;
    ``overwrite=False`` only refuses any existing ``path``.
    """
    final = Path(path).absolute()
    if final.exists() and not overwrite:
        raise OutputError(f"{final}: already exists; pass --overwrite to replace it")
    created: list[Path] = []
    try:
        created = make_dirs(final.parent)
        remove_stale_temps(final.parent, final.name)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name}-", dir=final.parent))
        os.chmod(tmp, 0o777 & ~(0o666 ^ _default_file_mode()))
    except OSError as exc:
        remove_empty(created)
        raise output_error(final, exc) from exc
    try:
        yield tmp
        old = None
        if final.exists():
            old = final.with_name(f"{TMP_PREFIX}{final.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty(created)
        raise output_error(final, exc) from exc
    except OutputError as exc:  # a write inside the folder failed: name the folder the user asked for
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty(created)
        raise OutputError(exc.message.replace(str(tmp), str(final))) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_empty(created)
        raise


def remove_stale_temps(folder: Path, stem: str = "") -> None:
    """Delete temp files/folders a killed run left behind in ``folder`` (only ``stem``'s, when given:
    ``.segedge-tmp-<stem>-*``, so a sibling output named ``<stem>x`` keeps its own)."""
    if not folder.is_dir():
        return
    for entry in folder.glob(f"{TMP_PREFIX}{stem}-*" if stem else f"{TMP_PREFIX}*"):
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json_object(path: Path, *, missing: str, fix: str) -> dict[str, Any]:
    """A JSON object from ``path``; ModelError naming the file and ``fix`` otherwise.

    ``missing`` is the whole message tail for a file that is not there; ``fix`` ends the
    messages for a file that is not JSON or not an object (how to make a good one).
    """
    if not path.is_file():
        raise ModelError(f"{path}: {missing}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc}); {fix}") from exc
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc}); {fix}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: JSON but not an object ({type(data).__name__}); {fix}")
    return data
