"""Every command's ``--help`` at 80 columns: the help text as written, whole option names, flags with no value.

Help is plain text (no rich markup), so ``pip install "segedge[edge]"`` keeps its ``[edge]``;
option names are never cut (``--fallback-max-drop``, not ``--fallback-max-d…``) nor split
at a hyphen; a flag (``--int8``) shows no placeholder such as ``<bool>``, because it takes none.
"""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from segedge.cli import app

WIDTH = 80


def walk(command, path: tuple[str, ...] = ()):
    """(path, click command) for the root, each group and each command under it."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(typer.main.get_command(app)))
IDS = [" ".join(path) or "segedge" for path, _ in COMMANDS]


def shown_params(command):
    return [p for p in command.params if not getattr(p, "hidden", False)]


def help_output(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    return result.output


def flat(text: str) -> str:
    return " ".join(text.split())


def test_every_command_is_walked():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"train", "export", "predict", "bench", "quant-report", "doctor", "data synth"} <= names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_bracketed_words_in_help_text_are_shown(path, command):
    sources = [command.help or ""] + [p.help or "" for p in shown_params(command) if hasattr(p, "help")]
    bracketed = {word for text in sources for word in re.findall(r"\[[^\]\s]+\]", text)}
    shown = flat(help_output(path))
    assert not {word for word in bracketed if word not in shown}


def test_doctor_help_names_the_edge_extra():
    assert 'pip install "segedge[edge]"' in flat(help_output(("doctor",)))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_option_names_are_whole_at_80_columns(path, command):
    output = help_output(path)
    names = {name for p in shown_params(command) if p.param_type_name == "option"
             for name in (*p.opts, *p.secondary_opts)}
    missing = {name for name in names if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", output)}
    assert not missing
    assert "…" not in output
    assert max(len(line) for line in output.splitlines()) <= WIDTH


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_option_names_in_help_prose_are_not_split_at_a_hyphen(path, command):
    lines = help_output(path).splitlines()
    assert not [line for line in lines if re.search(r"(?<![\w-])--[\w-]*-$", line.rstrip())]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_flags_show_no_value(path, command):
    ctx = command.context_class(command, info_name=path[-1] if path else "segedge")
    lines = [line.strip() for line in help_output(path).splitlines()]
    flags = [p for p in shown_params(command) if getattr(p, "is_flag", False)]
    assert path or flags  # the root has --version, --debug, --verbose
    for flag in flags:
        names = flag.get_help_record(ctx)[0]
        assert all(token.startswith("-") for token in re.split(r", | / ", names)), names
        assert any(line == names or line.startswith(names + "  ") for line in lines), names
        assert not re.search(rf"(?<![\w-]){re.escape(flag.opts[0])} +<", "\n".join(lines))
