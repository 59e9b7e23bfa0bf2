"""The ``segedge`` command line. Importing this never imports TensorFlow."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from segedge import __version__
from segedge.commands import data

app = typer.Typer(
    name="segedge",
    help="Train a segmentation U-Net, export it for small devices, and prove it still works there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segedge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
) -> None:
    if debug:
        os.environ["SEGEDGE_DEBUG"] = "1"


def _register_optional_commands() -> None:
    """Each stage's command module is light; it imports its heavy library when run."""
    import importlib

    for name in ("train", "export", "predict", "bench", "quant"):
        try:
            module = importlib.import_module(f"segedge.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"segedge.commands.{name}":
                raise
            continue
        module.register(app)


_register_optional_commands()


def main() -> None:
    app()
