"""Progress bars on stderr, so stdout stays clean for tables and ``--json``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console

T = TypeVar("T")

stderr = Console(stderr=True)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (rich); silent when stderr is not a terminal."""
    from rich.progress import track as rich_track

    yield from rich_track(
        items, description=description, total=total, console=stderr, transient=True,
        disable=not stderr.is_terminal,
    )
