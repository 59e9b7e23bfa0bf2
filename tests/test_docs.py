"""The documentation: a short README, a CLI reference generated from the app, no tracker numbers.

The CLI reference is rendered at build time by ``docs/gen_cli.py`` (an mkdocs hook); these tests
call it directly, and build the whole site with ``mkdocs build --strict`` when mkdocs is installed
(``make docs`` installs it; the site build is skipped with that reason otherwise).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 160
# "issue 18", "issue #18", "#18": a tracker number a reader cannot follow. CSS colours (color:#222) and
# HTML character references (&#123;) are not tracker numbers.
TRACKER = re.compile(r"issue ?#?[0-9]+|(?<!: )(?<![:&\w])#[0-9]{1,3}\b", re.IGNORECASE)


def gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commands_from_help(path: list[str]) -> list[list[str]]:
    """Every command path, read from the 'Commands:' section of each group's --help (not from gen_cli)."""
    from segedge.cli import app

    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    found = [path] if path else []
    section = result.output.split("\nCommands:\n", 1)
    if len(section) == 2:
        for line in section[1].splitlines():
            match = re.match(r"  (\S+)", line)
            if match:
                found.extend(commands_from_help([*path, match.group(1)]))
    return found


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_every_command_is_in_the_generated_reference():
    reference = gen_cli().render_cli()
    commands = commands_from_help([])
    assert {"train", "export", "predict", "bench", "doctor", "data"} <= {path[0] for path in commands}
    for path in commands:
        title = " ".join(["segedge", *path])
        assert f"`{title}`" in reference, f"{title} is missing from the CLI reference"
        assert f"Usage: {title} " in reference, f"{title}'s --help is missing from the CLI reference"


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
    files += [p for p in (ROOT / "docs").rglob("*") if p.suffix in {".md", ".py", ".yml", ".txt"}]
    files += sorted((ROOT / "segedge").rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    return files


def test_no_tracker_numbers():
    found = []
    for path in doc_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = TRACKER.search(line)
            if match:
                found.append(f"{path.relative_to(ROOT)}:{number}: {match.group(0)!r} in {line.strip()[:100]}")
    assert not found, "say the behaviour or the measurement instead:\n" + "\n".join(found)


def test_tracker_pattern():
    for text in ("as issue 18 found", "see Issue #7", "(#12)"):
        assert TRACKER.search(text), text
    for text in ("body{color:#222}", "background: #000", "&#123;", "x#1"):
        assert not TRACKER.search(text), text


def test_site_builds_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs and mkdocs-material are not installed ('make docs' installs the docs extra)")
    site = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for path in commands_from_help([]):
        assert " ".join(["segedge", *path]) in cli
    assert "Segmenter" in (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
