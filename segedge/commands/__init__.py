"""One module per CLI command; heavy libraries are imported inside command bodies only."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from segedge.errors import SegedgeError

F = TypeVar("F", bound=Callable)
err_console = Console(stderr=True)


def debug_enabled() -> bool:
    return os.environ.get("SEGEDGE_DEBUG", "") not in ("", "0")


def user_errors(fn: F) -> F:
    """Turn a ``SegedgeError`` into one stderr line and its exit code (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SegedgeError as exc:
            if debug_enabled():
                raise
            err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; partial outputs were discarded")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
