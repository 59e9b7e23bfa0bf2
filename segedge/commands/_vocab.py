"""Old option spellings kept for one release, mapped onto the one vocabulary every command shares.

Not a command (the leading underscore): export, bench, predict and quant-report
import it. An old name is a second, hidden typer option (``hidden=True``: it
works but ``--help`` lists only the new name); the command hands both values
here and gets one back, with a one-line note on stderr that says the new name.

Renames (old -> new), for the README and the next release's removal:
    export        --formats -> --format, --calib -> --calib-images, --eval -> --eval-images,
                  --max-miou-drop -> --fallback-max-drop
    quant-report  --max-miou-drop -> --fallback-max-drop
    bench         --artifacts -> --format
    predict       --artifact -> --format
"""

from __future__ import annotations

from typing import TypeVar

from segedge.commands import err_console
from segedge.util.errors import ConfigError

T = TypeVar("T")


def _note(old: str, new: str) -> None:
    err_console.print(f"note: {old} is now {new}; the old name will be removed in the next release",
                      highlight=False, soft_wrap=True, markup=False)


def renamed_list(new_values: list[str] | None, old_values: list[str] | None, new: str, old: str) -> list[str] | None:
    """A repeatable list option and its old spelling: both given are joined, as repeating one option is."""
    if not old_values:
        return new_values
    _note(old, new)
    return [*(new_values or []), *old_values]


def renamed_value(new_value: T, old_value: T | None, new: str, old: str, default: T) -> T:
    """A single-value option and its old spelling; two different explicit values are refused."""
    if old_value is None:
        return new_value
    _note(old, new)
    if new_value != default and new_value != old_value:
        raise ConfigError(f"{new} {new_value} and {old} {old_value} disagree; {old} is the old name of {new}, "
                          f"give only {new}")
    return old_value
