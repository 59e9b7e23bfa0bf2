"""Generates the CLI reference from the typer app at build time (an mkdocs hook).

``docs/reference/cli.md`` holds the marker ``<!-- segedge-cli -->``; this hook replaces it with
every command's ``--help`` exactly as ``segedge CMD --help`` prints it, walked from
``typer.main.get_command(segedge.cli.app)``. Nothing in the reference is hand-copied, so a new
command or option appears on the next ``mkdocs build``. ``render_cli()`` is also what
``tests/test_docs.py`` calls.
"""

from __future__ import annotations

import os
from typing import Any

MARKER = "<!-- segedge-cli -->"
WIDTH = 80


def _context(command: Any, name: str, parent: Any = None) -> Any:
    return command.context_class(command, info_name=name, parent=parent, terminal_width=WIDTH,
                                 max_content_width=WIDTH)


def walk(command: Any, name: str, parent: Any = None) -> list[tuple[str, Any, Any]]:
    """(full name, command, its context) for ``command`` and everything under it, in the app's order.

    Typer ships its own copy of click, so groups are found by what they do (``list_commands``).
    """
    ctx = _context(command, name, parent)
    found = [(ctx.command_path, command, ctx)]
    if hasattr(command, "list_commands"):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and not getattr(sub, "hidden", False):
                found.extend(walk(sub, sub_name, ctx))
    return found


def render_cli() -> str:
    """The whole reference as markdown: one section per command, its help in a code block."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import typer

    from segedge.cli import app

    root = typer.main.get_command(app)
    parts: list[str] = []
    for title, command, ctx in walk(root, "segedge"):
        level = "##" if len(title.split()) <= 2 else "###"
        parts.append(f"{level} `{title}`\n\n```text\n{command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """mkdocs hook: fill the marker on the CLI reference page."""
    if MARKER in markdown:
        return markdown.replace(MARKER, render_cli())
    return markdown
