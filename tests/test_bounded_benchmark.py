"""benchmarks/bench_large_photo.py and bench_decode_draft.py run at their smallest settings and print their tables
(no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_benchmarks_smoke import leftovers, table_rows

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def script_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                TF_CPP_MIN_LOG_LEVEL="2")


def test_bench_large_photo_prints_memory_floors_and_targets(tiny_bundle, tmp_path):
    temp = tmp_path / "temp"  # the script's photos and outputs go here, and must be gone when it exits
    temp.mkdir()
    env = {**script_env(), "TMPDIR": str(temp)}
    # --old: this checkout again, standing in for another one, so the before rows and the ratio run too
    result = subprocess.run([sys.executable, "benchmarks/bench_large_photo.py", str(tiny_bundle), "--sizes",
                             "64x48,96x72", "--rounds", "1", "--threads", "1", "--cli", "--old", str(REPO),
                             "--json", str(tmp_path / "large.json")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout, ["code", "photo", "MP", "upsample", "wall ms", "idle RSS MB", "peak RSS MB",
                                      "above idle MB", "B/pixel", "cli wall ms", "cli peak MB"])
    assert sorted((r[0], r[1], r[3]) for r in rows) == sorted(
        (code, photo, mode) for code in ("after", "before") for photo in ("64x48", "96x72")
        for mode in ("logits", "mask"))
    floors = table_rows(result.stdout, ["photo", "work", "ms"])
    assert [r[1] for r in floors] == ["JPEG decode", "mask PNG write", "overlay encode", "sum"] * 2
    assert [r[0] for r in table_rows(result.stdout, ["level", "KB", "ms", "used"])] == ["1", "3", "6", "9"]
    stages = table_rows(result.stdout, ["upsample", "stage", "ms"])
    assert {r[0] for r in stages} == {"logits", "mask"} and len(stages) == 18
    targets = table_rows(result.stdout, ["target", "measured", "bound", "within"])
    assert len(targets) == 6 and {r[3] for r in targets} <= {"yes", "no"}
    assert not leftovers(temp), leftovers(temp)
    data = json.loads((tmp_path / "large.json").read_text())
    assert len(data["rows"]) == 8 and all(row["peak_rss"] >= row["idle_rss"] > 0 for row in data["rows"])


def test_bench_decode_draft_compares_both_decodes_on_the_reference_set_and_photos(tiny_bundle):
    result = subprocess.run([sys.executable, "benchmarks/bench_decode_draft.py", str(tiny_bundle), "--sizes",
                             "96x72,400x300", "--photos", "1", "--rounds", "1", "--threads", "1"],
                            cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = table_rows(result.stdout, ["decode", "images", "agreement with Keras %", "mIoU %",
                                           "equal to full decode %", "images reduced"])
    assert [r[0] for r in reference] == ["full decode", "draft"] and reference[0][4] == "100.000"
    assert all(0.0 <= float(r[2]) <= 100.0 for r in reference)
    photos = table_rows(result.stdout, ["photo", "photos", "mIoU full %", "mIoU draft %", "masks equal %",
                                        "decode+resize full ms", "decode+resize draft ms"])
    assert [r[0] for r in photos] == ["96x72", "400x300"] and all(0.0 <= float(r[4]) <= 100.0 for r in photos)
