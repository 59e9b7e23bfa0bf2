"""``segedge bench B1 B2 --out R``: one table and frontier over several bundles, refusals, --budget-ms."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segedge.cli import app

# Fast and gate-neutral: a random-weight micro model is not what the gate is about here.
QUICK = ["--format", "int8", "--threads", "1", "--runs", "3", "--warmup", "1", "--e2e-images", "1", "--no-keras",
         "--gallery", "0", "--min-agreement", "0", "--max-miou-drop", "100"]


def _copy(bundle: Path, to: Path, edit=None) -> Path:
    shutil.copytree(bundle, to)
    if edit is not None:
        manifest = json.loads((to / "manifest.json").read_text())
        edit(manifest)
        (to / "manifest.json").write_text(json.dumps(manifest))
    return to


def _bench(*args: str):
    return CliRunner().invoke(app, ["bench", *args])


def test_bundles_of_different_classes_are_refused_in_one_line_naming_both(micro_bundle, tmp_path):
    first = _copy(micro_bundle, tmp_path / "a")

    def rename(manifest):
        manifest["classes"][1] = "not-" + manifest["classes"][1]

    other = _copy(micro_bundle, tmp_path / "b", rename)
    result = _bench(str(first), str(other), "--out", str(tmp_path / "r"), *QUICK)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "different classes" in lines[0]
    assert str(first) in lines[0] and str(other) in lines[0]
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_bundles_with_different_reference_images_need_data(micro_bundle, tmp_path):
    first = _copy(micro_bundle, tmp_path / "a")
    other = _copy(micro_bundle, tmp_path / "b", lambda m: m["reference"]["ids"].reverse())
    result = _bench(str(first), str(other), "--out", str(tmp_path / "r"), *QUICK)
    assert result.exit_code == 2 and "--data" in result.output and str(other) in result.output


def test_several_bundles_share_one_table_frontier_and_budget(micro_bundle, tmp_path):
    first, other = _copy(micro_bundle, tmp_path / "a"), _copy(micro_bundle, tmp_path / "b")
    out = tmp_path / "r"
    result = _bench(str(first), str(other), "--out", str(out), "--budget-ms", "100000", *QUICK)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    names = [b["name"] for b in report["bundles"]]
    assert len(names) == 2 and len(set(names)) == 2  # same source run: the second gets a suffix
    for name in names:  # each bundle benched as on its own, with its own report and gate
        assert json.loads((out / name / "report.json").read_text())["gate"]["passed"]
    rows = report["rows"]
    assert [(r["bundle"], r["artifact"], r["threads"]) for r in rows] == [(n, "int8", 1) for n in names]
    assert any(r["frontier"] for r in rows)
    chosen = report["budget"]["chosen"]
    assert chosen["bundle"] in names and chosen["artifact"] == "int8" and chosen["threads"] == 1
    assert [r for r in rows if r["chosen"]][0]["frontier"]
    assert (out / "report.md").is_file() and (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert report["budget"]["line"] in result.output.replace("\n", "")
    # the terminal table is whole in a CI log (no terminal): every bundle's row, no cell cut short
    table = [line.split() for line in result.output.splitlines() if line.split()[:1] in ([names[0]], [names[1]])]
    assert [row[0] for row in table] == names and "…" not in result.output
    assert {row[-1] for row in table} >= {"chosen"} and table[0][1] == "v2"  # a run that names none: the seed's
    marker = json.loads((out / ".segedge.json").read_text())
    assert set(marker["files"]) == {*names, "report.json", "report.md", "frontier.png"}


def test_one_bundle_with_a_budget_none_fits_names_the_fastest(micro_bundle, tmp_path):
    out = tmp_path / "r"
    result = _bench(str(micro_bundle), "--out", str(out), "--budget-ms", "0.000001", *QUICK)
    assert result.exit_code == 0, result.output
    assert "no artifact runs under it" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["budget"]["chosen"] is None and report["budget"]["fastest"]["artifact"] == "int8"
    assert (out / "report.md").is_file() and not (out / "frontier.png").exists()  # the single-bundle layout


@pytest.mark.parametrize("budget", ["0", "-5"])
def test_a_budget_must_be_positive(micro_bundle, tmp_path, budget):
    result = _bench(str(micro_bundle), "--out", str(tmp_path / "r"), "--budget-ms", budget, *QUICK)
    assert result.exit_code == 2 and "--budget-ms" in result.output
