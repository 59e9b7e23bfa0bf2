"""Resumable, verified HTTP downloads into segedge's cache folder (standard library only).

Why not ``keras.utils.get_file`` or ``torchvision``'s helper: neither resumes a cut
download (VOC is a 2 GB tar), the first prints to stdout, and both need a heavy import.
Here a transfer writes ``CACHE/<name>.part`` and a later attempt continues it with an
HTTP ``Range`` request; only a file whose checksum matched is renamed to
``CACHE/<name>``. So nothing half-written ever appears under a name a user or another
tool would read, and the ``.part`` file is the only leftover of an interrupted run.

segedge deletes only what it downloaded: the cache may be a folder the user shares with their
own files, so only files listed in its ownership marker (``segedge.data.cache``) are ever resumed
or deleted. A user's file of the same name is read (and returned when it matches and the caller
may use it), never written to or deleted; when a download has to take its name, it is renamed
aside (``<name>.md5-mismatch`` or ``<name>.not-from-segedge``) only once the download arrived and
checked out, so a failed or offline run leaves it exactly as it was.

Every failure a user can meet (no network, DNS, timeout, an HTTP error status, a
checksum mismatch, a full disk) is one ``DownloadError`` / ``OutputError`` line that
names the URL or the file and ends with a caller-supplied hint (the offline way out).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import http.client
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from segedge import __version__
from segedge.data.cache import MARKER, PART_SUFFIX, _forget, _record, _set_aside, discard, owns
from segedge.data.cache import cache_dir as cache_dir  # re-exported: callers import it from here
from segedge.util.errors import DataError, OutputError
from segedge.util.progress import stderr

CHUNK = 1 << 20
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_ATTEMPTS = 4  # a cut connection is retried (resuming) this many times in one run
MISMATCH_SUFFIX = ".md5-mismatch"  # a user's file that failed the published checksum, renamed aside
UNCHECKED_SUFFIX = ".not-from-segedge"  # a user's file in a download's way that could not be checked
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(DataError):
    """A download or a downloaded file failed (network, HTTP status, checksum); exit code 3."""


@dataclass(frozen=True)
class Checksum:
    """A published digest: ``algorithm`` is a ``hashlib`` name (md5, sha256)."""

    algorithm: str
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.algorithm} {self.hexdigest}"


def file_digest(path: str | os.PathLike[str], algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_url(text: str) -> bool:
    return urllib.parse.urlsplit(text).scheme in ("http", "https")


def local_path(text: str) -> Path:
    """A ``file://`` URL or a plain path as a ``Path``."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    return Path(text).expanduser()


def verify(path: Path, checksum: Checksum | None, published_md5: str | None = None, *, hint: str,
           what: str | None = None) -> None:
    """Raise ``DownloadError`` when ``path`` does not match its expected digest(s)."""
    expected = [c for c in (checksum, Checksum("md5", published_md5) if published_md5 else None) if c]
    for check in expected:
        actual = file_digest(path, check.algorithm)
        if actual.lower() != check.hexdigest.lower():
            raise DownloadError(
                f"{what or path}: {check.algorithm} is {actual}, expected {check.hexdigest} "
                f"(corrupt, truncated or not the official file); {hint}"
            )


def download(url: str, target: Path, *, checksum: Checksum | None, hint: str, size: int | None = None,
             timeout: float | None = None, attempts: int | None = None,
             description: str | None = None, reuse_foreign: bool = False) -> Path:
    """``url`` -> ``target``, verified; resumes ``target.part`` left by an earlier run.

    ``checksum`` is the published digest (None only where the publisher gives none;
    then a server-published ``x-goog-hash`` md5 is checked when the server sends one).
    ``hint`` ends every error line: what the user can do without this download.
    A complete ``target`` that already matches is returned without any network access: one
    segedge downloaded, or (``reuse_foreign``) one the user put there; the caller deletes
    the result only through ``discard``, which leaves a user's file alone. Without
    ``reuse_foreign`` a user's file is never returned, so a caller may consume the result.
    """
    foreign: tuple[str, str] | None = None  # (suffix, why) for a user's file at target
    if target.is_file() and owns(target):
        if checksum is None:
            return target
        try:
            verify(target, checksum, hint=hint)
            return target
        except DownloadError:
            discard(target)  # segedge's own download, gone bad since: fetch it again
    elif target.exists() or target.is_symlink():
        foreign = _judge_foreign(target, checksum)
        if foreign is None:
            if reuse_foreign:
                return target
            foreign = (UNCHECKED_SUFFIX, "segedge uses only its own download here")
        hint = f"{target} was left as it is ({foreign[1]}); {hint}"
    part = target.with_name(target.name + PART_SUFFIX)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(target.parent, exc, hint) from exc
    if (part.exists() or part.is_symlink()) and not owns(part):
        raise OutputError(
            f"{part}: a partial download segedge has no record of (not listed in {target.parent / MARKER}: "
            f"another program's, or an older segedge's); it is not resumed, overwritten or deleted: move it "
            f"away (delete it if it is an old segedge download) and run again"
        )
    try:
        _record(part, partial=True)
        _fetch_part(url, part, checksum=checksum, size=size, timeout=timeout, attempts=attempts, hint=hint,
                    description=description or target.name)
        if foreign is not None and (target.exists() or target.is_symlink()) and not owns(target):
            aside = _set_aside(target, foreign[0])
            stderr.print(f"note: {target} is not a file segedge downloaded ({foreign[1]}): renamed to {aside}, "
                         f"not deleted; {target} is now the verified download", highlight=False, markup=False,
                         soft_wrap=True)
        os.replace(part, target)
        _record(target)
    except OSError as exc:
        raise _write_error(target, exc, hint) from exc
    finally:
        if part.exists() and not part.stat().st_size:
            discard(part)  # nothing arrived (HTTP error, offline): no empty leftover
        elif not part.exists():
            _forget(part)
    return target


def _judge_foreign(target: Path, checksum: Checksum | None) -> tuple[str, str] | None:
    """None when a user's file at ``target`` passes ``checksum``, else (suffix, why) to set it aside with."""
    if checksum is None or not target.is_file():
        return UNCHECKED_SUFFIX, "no published checksum to check it against"
    actual = file_digest(target, checksum.algorithm)
    if actual.lower() == checksum.hexdigest.lower():
        return None
    return MISMATCH_SUFFIX, f"its {checksum.algorithm} is {actual}, not the published {checksum.hexdigest}"


def _fetch_part(url: str, part: Path, *, checksum: Checksum | None, size: int | None, timeout: float | None,
                attempts: int | None, hint: str, description: str) -> None:
    """Transfer into ``part`` (resuming, retrying a cut connection) and verify it; a bad one is deleted."""
    timeout = DEFAULT_TIMEOUT_S if timeout is None else timeout
    attempts = DEFAULT_ATTEMPTS if attempts is None else attempts
    published_md5: str | None = None
    for attempt in range(1, attempts + 1):
        before = part.stat().st_size if part.exists() else 0
        try:
            published_md5 = _transfer(url, part, size=size, timeout=timeout, hint=hint,
                                      description=description) or published_md5
            break
        except _Cut as cut:
            grown = (part.stat().st_size if part.exists() else 0) > before
            if attempt == attempts or not grown:
                raise DownloadError(
                    f"{url}: the connection broke off ({cut.why}) after {attempt} attempt(s); "
                    f"{part.stat().st_size if part.exists() else 0} bytes are kept in {part} "
                    f"and the next run resumes from there; {hint}"
                ) from None
            stderr.print(f"connection cut ({cut.why}); resuming at byte {part.stat().st_size}", highlight=False)
            time.sleep(min(0.2 * attempt, 2.0))
    try:
        verify(part, checksum, published_md5, hint=f"the download was deleted; run again, or {hint}", what=url)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise


class _Cut(Exception):
    """The body stopped early: worth resuming."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _transfer(url: str, part: Path, *, size: int | None, timeout: float, hint: str,
              description: str) -> str | None:
    """One request; appends to ``part`` (Range) or restarts it; returns the server's md5 if sent."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    request = urllib.request.Request(url, headers={"User-Agent": f"segedge/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http/https only, checked)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None  # the part is already whole (or wrong): the checksum decides
        raise DownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}; {hint}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"{url}: {_network_reason(url, exc.reason, timeout)}; {hint}") from None
    except TimeoutError:
        raise DownloadError(f"{url}: {_network_reason(url, TimeoutError(), timeout)}; {hint}") from None
    except (ConnectionError, http.client.HTTPException) as exc:
        raise _Cut(type(exc).__name__) from None
    with response:
        status = response.status
        if offset and status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(
                    f"{url}: the server resumed at byte {start}, not {offset}; delete {part} and run again; {hint}"
                )
        else:
            offset = 0  # a plain 200: the server ignored Range, start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else size
        published = _goog_md5(response.headers.get("x-goog-hash", ""))
        received = 0
        try:
            with open(part, "ab" if offset else "wb") as handle, _bar(description, total, offset) as advance:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except TimeoutError:
                        raise _Cut(f"no data for {timeout:g} s") from None
                    except (OSError, http.client.HTTPException) as exc:  # reset, TLS error, short read
                        raise _Cut(type(exc).__name__) from None
                    if not chunk:
                        break
                    handle.write(chunk)
                    received += len(chunk)
                    advance(len(chunk))
        except OSError as exc:  # reading errors became _Cut above: this is the local file
            raise _write_error(part, exc, hint) from exc
    if total is not None and offset + received < total:
        raise _Cut(f"got {offset + received} of {total} bytes")
    return published


def _write_error(path: Path, exc: OSError, hint: str) -> OutputError:
    if exc.errno == errno.ENOSPC:
        return OutputError(
            f"{path}: cannot write: the disk is full; free space there or set SEGEDGE_CACHE to a folder on a "
            f"bigger disk (segedge deletes only what it lists in {MARKER} there; a .part file is kept and "
            f"resumed); {hint}"
        )
    return OutputError(f"{path}: cannot write: {exc.strerror or exc}; {hint}")


def _network_reason(url: str, reason: object, timeout: float) -> str:
    host = urllib.parse.urlsplit(url).hostname or url
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve host {host} (no network or DNS: {reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection to {host} refused (offline, or nothing serves that address)"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer from {host} within {timeout:g} s"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error talking to {host} ({reason})"
    if isinstance(reason, OSError):
        return f"cannot connect to {host} ({reason.strerror or reason})"
    return f"cannot download ({reason})"


def _range_start(header: str) -> int | None:
    match = _CONTENT_RANGE.match(header.strip())
    return int(match.group(1)) if match else None


def _goog_md5(header: str) -> str | None:
    """Google Cloud Storage's ``x-goog-hash: crc32c=..., md5=<base64>`` as hex (whole object)."""
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "md5" and value:
            try:
                return base64.b64decode(value, validate=True).hex()
            except ValueError:
                return None
    return None


class _bar:
    """A rich transfer bar on stderr (silent when stderr is not a terminal); yields ``advance``."""

    def __init__(self, description: str, total: int | None, done: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=stderr, transient=True, disable=not stderr.is_terminal,
        )
        self.task = self.progress.add_task(description, total=total, completed=done)

    def __enter__(self):
        self.progress.start()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc) -> None:
        self.progress.stop()
