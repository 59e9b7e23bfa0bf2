"""One error hierarchy for everything a user can get wrong.

Each error carries a message meant for a person (the file, what is wrong and,
where obvious, the fix) and the exit code the CLI returns for it, so scripts
and CI can tell a bad input from a failed parity gate.

Exit codes (docs/reference/exit-codes.md): 0 ok; 1 an unexpected error (a bug: the
traceback is shown); 2 usage or option error; 3 data; 4 model, run folder or
bundle; 5 export failed; 6 missing optional extra; 7 parity gate; 8 output
location; 9 the edge cannot run on this machine (``segedge doctor``); 130
interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
from pathlib import Path

# Exit codes that are not a SegedgeError subclass (the CLI sets them itself).
EXIT_OK = 0
EXIT_USAGE = 2  # a command-line usage error (unknown option, value out of range), same code as ConfigError
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, the shell convention)


class SegedgeError(Exception):
    """Base of every error segedge reports to a user as one readable line."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(SegedgeError):
    """A bad option value or combination; nothing was done."""

    exit_code = 2


class DataError(SegedgeError):
    """A dataset file is missing, unreadable or inconsistent."""

    exit_code = 3


class ModelError(SegedgeError):
    """A model or bundle file is missing, truncated, tampered or incompatible."""

    exit_code = 4


class ExportError(SegedgeError):
    """A conversion or its self-check failed; the previous bundle is untouched."""

    exit_code = 5


class MissingExtraError(SegedgeError):
    """An optional dependency is not installed; the message names the extra."""

    exit_code = 6

    def __init__(self, module: str, extra: str) -> None:
        what = f"{module} is" if "," not in module else f"{module} are"
        super().__init__(f"{what} not installed; install the {extra} extra: pip install \"segedge[{extra}]\"")
        self.module = module
        self.extra = extra


class ParityError(SegedgeError):
    """A converted model drifted past a stated bound (the CI gate)."""

    exit_code = 7


class OutputError(SegedgeError):
    """The output location cannot be written (exists, read-only, disk full)."""

    exit_code = 8


class EdgeUnavailableError(SegedgeError):
    """``segedge doctor``: this machine cannot run the edge (32-bit OS, a runtime wheel that crashes)."""

    exit_code = 9


def user_path(path: str | os.PathLike[str]) -> Path:
    """A path the user typed, as messages show it: ``~`` expanded and ``.``/``..`` collapsed.

    ``os.path.normpath``, never ``resolve()``: the path stays the one the user named
    (relative stays relative, symlinks stay), without the ``flow/../own/...``
    detours that make a message hard to read. Commands also open the path they show,
    so where ``..`` follows a symlink (``link/..`` is the link target's parent, not
    ``.``) the collapsed path would name another file: then it is kept as typed.
    """
    typed = os.path.expanduser(os.fspath(path))
    collapsed = os.path.normpath(typed)
    if collapsed != typed and os.path.realpath(collapsed) != os.path.realpath(typed):
        return Path(typed)
    return Path(collapsed)


def absolute_path(path: str | os.PathLike[str]) -> Path:
    """A user's path made absolute for a record (config.json), ``..`` collapsed as messages show it (not resolved)."""
    return user_path(Path(user_path(path)).absolute())
