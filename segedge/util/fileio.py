"""Atomic writes: a file or folder appears whole under its final name or not at all."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segedge.util.errors import ModelError, OutputError

TMP_PREFIX = ".segedge-tmp-"
# Every temp segedge makes is named ``.segedge-tmp-<pid>-<token>-<name>``: the pid says whose it is (a temp
# of a live process is never removed, whatever its name), the token (mkdtemp's letters, digits and '_', or
# hex) has no '-', so ``<name>`` is exactly what follows the second '-' and ``bundle`` never matches the
# temp of a sibling ``bundle-int8``.
_TEMP_NAME = re.compile(r"\.segedge-tmp-(\d+)-([a-z0-9_]+)-(.+)", re.DOTALL)
# What versions before the pid scheme left behind for ``<name>``: mkdtemp's 8 characters, or the swap's '-old'.
_LEGACY_SUFFIX = r"-([a-z0-9_]{8}|old)"
SCRATCH = "scratch"


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
        # the final name last: its suffix stays (keras wants ".keras"); a very long one gives way to the suffix
        tail = final.name if len(final.name) <= 150 else final.suffix
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(), suffix=f"-{tail}", dir=final.parent)
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


def temp_prefix() -> str:
    """``.segedge-tmp-<pid>-``: what every temp this process makes starts with (then a token, '-', the name)."""
    return f"{TMP_PREFIX}{os.getpid()}-"


def temp_name(name: str) -> str:
    """A fresh temp name for ``name`` owned by this process (``.segedge-tmp-<pid>-<hex>-<name>``)."""
    return f"{temp_prefix()}{secrets.token_hex(4)}-{name}"


def make_temp_dir(parent: Path, name: str) -> Path:
    """A new temp folder in ``parent`` for ``name``, owned by this process (``remove_stale_temps``)."""
    return Path(tempfile.mkdtemp(prefix=temp_prefix(), suffix=f"-{name}", dir=parent))


def temp_owner(entry: str) -> tuple[int, str] | None:
    """(pid, name) of a temp named by the pid scheme, else None."""
    match = _TEMP_NAME.fullmatch(entry)
    return (int(match.group(1)), match.group(3)) if match else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running; when in doubt, yes (its temp is kept)."""
    if pid == os.getpid():
        return True
    if pid <= 0 or os.name == "nt":  # os.kill(pid, 0) is no probe on Windows
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def _stale(entry: str, stem: str) -> bool:
    """Whether the temp ``entry`` was left by a process that is gone (and is ``stem``'s, when given)."""
    if stem and re.fullmatch(re.escape(f"{TMP_PREFIX}{stem}") + _LEGACY_SUFFIX, entry):
        return True  # an older version's name (no pid): only the exact shapes it used for this stem
    owner = temp_owner(entry)
    if owner is not None:
        pid, name = owner
        return (not stem or name == stem) and not pid_alive(pid)
    return not stem and entry.startswith(TMP_PREFIX)


def remove_stale_temps(folder: Path, stem: str = "") -> None:
    """Delete temp files/folders a killed run left behind in ``folder``: those of a process that is gone
    (a concurrent build's temp stays), and with ``stem`` only the temps for exactly that name, so a
    sibling output named ``<stem>-x`` keeps its own."""
    try:
        entries = list(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(TMP_PREFIX) and _stale(entry.name, stem):
            _remove_entry(entry)


def _remove_entry(entry: Path) -> None:
    """A file, a link (never followed) or a folder tree."""
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    except OSError:
        pass


def real_target(path: Path) -> Path:
    """The folder a symbolic link at ``path`` points to (links followed), else ``path``: what is swapped."""
    return path.resolve() if path.is_symlink() else path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it in for ``path``.

    A run killed midway leaves only a ``.segedge-tmp-<pid>-*`` sibling (removed by the
    next run once that process is gone) and the previous folder intact. ``path`` given as a
    symbolic link (a dataset on another disk) is written through: the temp is built beside the
    link's target and swapped there, so the link stays a link. Whether ``path`` may be replaced at
    all is ``segedge.util.outputs.claim``'s decision, taken before this is entered;
    ``overwrite=False`` only refuses any existing ``path``.
    """
    final = Path(path).absolute()
    if final.exists() and not overwrite:
        raise OutputError(f"{final}: already exists; pass --overwrite to replace it")
    created: list[Path] = []
    try:
        real = real_target(final)
        created = make_dirs(real.parent)
        remove_stale_temps(real.parent, real.name)
        tmp = make_temp_dir(real.parent, real.name)
        os.chmod(tmp, 0o777 & ~(0o666 ^ _default_file_mode()))
    except OSError as exc:
        remove_empty(created)
        raise output_error(final, exc) from exc
    try:
        with terminate_unwinds():  # SIGTERM removes the half-built folder as Ctrl-C does
            yield tmp
        old = None
        if real.exists() or real.is_symlink():
            old = real.with_name(temp_name(real.name))
            os.replace(real, old)
        os.replace(tmp, real)
        if old is not None:
            _remove_entry(old)
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


class Terminated(SystemExit):
    """SIGTERM turned into an exception, so cleanup (``finally``) runs as it does for Ctrl-C."""


@contextlib.contextmanager
def terminate_unwinds() -> Iterator[None]:
    """While inside, SIGTERM (``kill``, a service manager) unwinds the stack like Ctrl-C does (exit 143),
    instead of ending the process on the spot with its temp folders left behind. Only where Python's
    default is in place and on the main thread (signal handlers can only be set there)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except ValueError:
        previous = None
    if previous not in (signal.SIG_DFL, None):
        yield
        return

    def unwind(signum, frame):  # noqa: ARG001 - the signal module's signature
        raise Terminated(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def scratch_dir(parent: Path | None = None, name: str = SCRATCH) -> Iterator[Path]:
    """A scratch folder, removed on the way out (Ctrl-C and SIGTERM too), and by a later run when this
    one is killed outright (SIGKILL, power loss).

    ``parent``: inside a folder that is itself a temp (an output's ``atomic_dir`` build folder, which
    the next build of that output removes once this process is gone). Without it, in the system temp
    folder, named by the pid scheme: every call first removes the scratch folders of processes that
    are gone.
    """
    if parent is None:
        parent = Path(tempfile.gettempdir())
        remove_stale_temps(parent, name)
    folder = make_temp_dir(parent, name)
    try:
        with terminate_unwinds():
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
