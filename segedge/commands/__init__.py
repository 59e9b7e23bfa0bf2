"""One module per CLI command; heavy libraries are imported inside command bodies only."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from segedge.util.errors import EXIT_INTERRUPTED, SegedgeError
from segedge.util.fileio import Terminated
from segedge.util.optional import extra_for

F = TypeVar("F", bound=Callable)
err_console = Console(stderr=True)


def debug_enabled() -> bool:
    return os.environ.get("SEGEDGE_DEBUG", "") not in ("", "0")


def print_error(message: str) -> None:
    """``error: MESSAGE`` on stderr: the one line every user-caused failure prints (rich markup escaped)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def user_errors(fn: F) -> F:
    """Turn a ``SegedgeError`` into one stderr line and its exit code (traceback with --debug).

    An ``ImportError`` of a module that an extra provides (an import no command
    checked up front) is reported the same way, as ``MissingExtraError``.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SegedgeError as exc:
            if debug_enabled():
                raise
            print_error(exc.message)
            raise typer.Exit(exc.exit_code) from None
        except ImportError as exc:
            missing = extra_for(exc)
            if missing is None or debug_enabled():
                raise
            print_error(missing.message)
            raise typer.Exit(missing.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; partial outputs were discarded")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Terminated as exc:  # SIGTERM while an output was being built: the same clean-up, said the same way
            err_console.print("terminated (SIGTERM); partial outputs were discarded")
            raise typer.Exit(exc.code) from None

    return wrapper  # type: ignore[return-value]
