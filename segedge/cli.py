"""The ``segedge`` command line. Importing this never imports TensorFlow."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from segedge import __version__
from segedge.commands import data, print_error
from segedge.errors import EXIT_INTERRUPTED


def usage_line(exc: typer.TyperException) -> str:
    """A click usage error as one line, with where to read more (``segedge CMD --help``)."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


class OneLineErrors(TyperGroup):
    """The root command: click's usage errors print one ``error: ...`` line (exit 2), like segedge's own.

    Typer otherwise draws them in a boxed rich panel over several lines. Only
    the standalone run (the ``segedge`` script, ``CliRunner``) is changed;
    ``standalone_mode=False`` callers get click's exceptions as before.
    """

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name or "segedge", complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # click's ClickException / UsageError / BadParameter
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare 'segedge' or 'segedge data': the help
                exc.show()
            else:
                print_error(usage_line(exc))
            sys.exit(exc.exit_code)
        except typer.Abort:
            print_error("aborted")
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
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

    for name in ("train", "export", "predict", "bench", "quant", "doctor"):
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
