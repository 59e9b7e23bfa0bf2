"""The ``segedge`` command line. Importing this never imports TensorFlow."""

from __future__ import annotations

import inspect
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from segedge import __version__
from segedge.commands import data, print_error
from segedge.util.errors import EXIT_INTERRUPTED
from segedge.util.quiet import QuietStderr


def usage_line(exc: typer.TyperException) -> str:
    """A click usage error as one line, with where to read more (``segedge CMD --help``)."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def wrap_help(text: str, width: int, indent: str = "") -> list[str]:
    """Help text as lines of at most ``width``: paragraphs kept, words (option names) never broken.

    A paragraph that starts with ``\\b`` keeps its line breaks, as in click.
    """
    lines: list[str] = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        if lines:
            lines.append("")
        if paragraph.startswith("\b"):
            lines.extend(indent + line for line in paragraph.splitlines()[1:])
            continue
        lines.extend(textwrap.wrap(" ".join(paragraph.split()), width, initial_indent=indent,
                                   subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
                     or [indent])
    return lines


_Context = TyperCommand.context_class


class HelpFormatter(_Context.formatter_class):  # type: ignore[name-defined,misc]
    """click's plain help layout, wrapping at spaces only: ``--fallback-max-drop`` is never split."""

    def write_text(self, text: str) -> None:
        self.write("\n".join(wrap_help(text, self.width, " " * self.current_indent)) + "\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        if not rows:
            return
        first_col = min(max(len(first) for first, _ in rows), col_max) + col_spacing
        text_width = max(self.width - first_col - 2, 10)
        pad = " " * (first_col + self.current_indent)
        for first, second in rows:
            self.write(f"{'':>{self.current_indent}}{first}")  # the whole name, however long
            if not second:
                self.write("\n")
                continue
            if len(first) <= first_col - col_spacing:
                self.write(" " * (first_col - len(first)))
            else:
                self.write("\n" + pad)
            lines = wrap_help(second, text_width) or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write((pad + line if line else "") + "\n")


class HelpContext(_Context):  # type: ignore[misc,valid-type]
    formatter_class = HelpFormatter


def format_params(command: Any, ctx: Any, formatter: HelpFormatter) -> None:
    """Arguments, then Options, then each ``rich_help_panel`` as its own section, in declaration order.

    Plain text, no rich markup: ``pip install "segedge[edge]"`` prints as written, every
    option name is whole at any width, and a flag shows no value placeholder.
    """
    arguments: list[tuple[str, str]] = []
    sections: dict[str, list[tuple[str, str]]] = {"Options": []}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        if param.param_type_name == "argument":  # its name as the usage line shows it, not a type placeholder
            arguments.append((argument_name(param), record[1]))
        else:
            sections.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
    for name, rows in [("Arguments", arguments), *sections.items()]:
        if rows:
            with formatter.section(name):
                formatter.write_dl(rows)


def argument_name(param: Any) -> str:
    """An argument as usage and help show it: its metavar, else its name in capitals; ``...`` when it repeats."""
    return (param.metavar or (param.name or "").upper()) + ("..." if param.nargs == -1 else "")


def plain_usage(command: Any, ctx: Any) -> list[str]:
    """``[OPTIONS] BUNDLE_OR_MODEL [INPUT]...``: each argument named as its help row names it."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            name = argument_name(param)
            pieces.append(name if param.required else f"[{name.removesuffix('...')}]" + "..." * (param.nargs == -1))
    return pieces


class PlainHelpCommand(TyperCommand):
    """A command whose ``--help`` is plain text (see ``format_params``)."""

    context_class = HelpContext

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return plain_usage(self, ctx)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        format_params(self, ctx, formatter)
        self.format_epilog(ctx, formatter)


class PlainHelpGroup(TyperGroup):
    """A group whose ``--help`` is plain text; each command's whole first paragraph is listed."""

    context_class = HelpContext

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)
        self.format_epilog(ctx, formatter)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                text = command.short_help or inspect.cleandoc(command.help or "").partition("\f")[0]
                rows.append((name, " ".join(text.split("\n\n")[0].split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


quiet_stderr = QuietStderr()
_standalone = False  # True in the segedge script (main); a CliRunner in tests leaves the process's fds alone


def verbose_enabled() -> bool:
    return os.environ.get("SEGEDGE_VERBOSE", "") not in ("", "0")


class OneLineErrors(PlainHelpGroup):
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
    rich_markup_mode=None,
)
app.add_typer(data.app, name="data", cls=PlainHelpGroup)


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
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="Show what TensorFlow, absl and LiteRT print (start-up banners, converter and "
                          "delegate INFO lines; hidden by default). Also: SEGEDGE_VERBOSE=1.")] = False,
) -> None:
    if debug:
        os.environ["SEGEDGE_DEBUG"] = "1"
    if verbose:
        os.environ["SEGEDGE_VERBOSE"] = "1"
    # before any command imports TensorFlow: its C++ INFO and WARNING lines, unless the user chose a level
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose_enabled() else "2")
    if _standalone and not verbose_enabled():
        quiet_stderr.start()


def _register_optional_commands() -> None:
    """Each stage's command module is light; it imports its heavy library when run."""
    import importlib

    for name in ("train", "export", "predict", "bench", "quant", "doctor", "serve"):
        try:
            module = importlib.import_module(f"segedge.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"segedge.commands.{name}":
                raise
            continue
        module.register(app)


_register_optional_commands()
for _typer_app in (app, data.app):  # every command's --help is plain text (PlainHelpCommand)
    for _info in _typer_app.registered_commands:
        if _info.cls in (None, TyperCommand):
            _info.cls = PlainHelpCommand


def main() -> None:
    global _standalone
    _standalone = True
    try:
        app()
    finally:
        quiet_stderr.stop()
