"""One unit per quantity wherever a person reads it (issue 14, item 5).

Sizes and memory: MB = 10^6 bytes, labelled "MB". mIoU and agreement:
percent, labelled "%". mIoU differences: "points". Expectations below are
hand-computed or read from an independent source (``os.stat``,
``/proc/self/statm``), never from the formatting code under test.
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest
from typer.testing import CliRunner

from segedge.bench.report_table import COLUMNS, columns_for
from segedge.export.verify import describe


def test_export_line_prints_size_in_mb_and_miou_in_percent():
    line = describe("int8", 2_500_000, {"agreement": 0.987654, "miou": 0.949213}, "int8")
    assert "2.50 MB" in line  # 2_500_000 bytes = 2.50 MB (2.38 in MiB)
    assert "agreement  98.765 %" in line
    assert line.endswith("mIoU 94.92 %")  # was "mIoU 0.949": a fraction beside a percentage


def test_float_export_line_keeps_the_logit_error_and_the_same_units():
    line = describe("fp32", 26_000_000, {"agreement": 1.0, "miou": 0.5, "max_abs_logit_error": 2e-7}, "fp32")
    assert re.fullmatch(r"fp32\s+26\.00 MB  agreement 100\.000 %  max\|dlogit\| 2\.00e-07  mIoU 50\.00 %", line)


def test_bench_headers_label_every_unit():
    rows = [{"artifact": "int8", "threads": 1, "size_mb": 6.7, "p50_ms": 5.0, "peak_rss_mb": 68.0, "miou": 0.9466,
             "miou_delta_pts": -0.01, "agreement": 0.9991, "speedup_vs_fp32": 1.5}]
    full = {c.key: c for c in columns_for(rows)}
    compact = {c.key: c for c in columns_for(rows, compact=True)}
    for columns, header in ((full, "header"), (compact, "short_header")):
        assert "MB" in getattr(columns["size_mb"], header)
        assert "%" in getattr(columns["miou"], header)
        assert "%" in getattr(columns["agreement"], header)
        assert "pts" in getattr(columns["miou_delta_pts"], header) or "points" in getattr(
            columns["miou_delta_pts"], header)
    assert full["miou"].cell(rows[0]) == "94.66" and full["agreement"].cell(rows[0]) == "99.91"
    assert full["miou_delta_pts"].cell(rows[0]) == "-0.01" and full["size_mb"].cell(rows[0]) == "6.7"
    assert all("MiB" not in c.header for c in COLUMNS)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_rss_is_reported_in_mb_not_mib():
    from segedge.bench.timing import current_rss_mb

    with open("/proc/self/statm", encoding="ascii") as handle:
        resident_pages = int(handle.read().split()[1])
    expected = resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    measured = current_rss_mb()
    assert measured == pytest.approx(expected, rel=0.01)  # MiB would be 4.6 % lower


def test_train_summary_prints_val_miou_in_percent(tmp_path):
    pytest.importorskip("tensorflow")
    from segedge.train.fit import TrainResult

    result = TrainResult(run_dir=tmp_path, config=None, split_counts={}, initial_epoch=0, epochs_completed=3,
                         best_epoch=2, best_value=0.9123, stopped_early=False, seconds=12.0,
                         history=[{"epoch": 2, "val_miou": 0.9123, "val_loss": 0.25}])
    assert "val mIoU 91.23 %" in result.summary()


def test_bench_report_uses_mb_and_percent(micro_bundle, tmp_path):
    from segedge.cli import app

    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["bench", str(micro_bundle), "--out", str(out), "--threads", "1", "--runs", "1",
                                      "--warmup", "0", "--e2e-images", "0", "--gallery", "0", "--no-keras",
                                      "--format", "fp32", "--no-plot", "--min-agreement", "0.97"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    row = next(r for r in report["rows"] if r["artifact"] == "fp32")
    size = (micro_bundle / "model_fp32.tflite").stat().st_size
    assert row["size_mb"] == pytest.approx(size / 1e6, rel=1e-9)  # the bytes export printed, as MB
    markdown = (out / "report.md").read_text()
    assert "| size MB |" in markdown and "| mIoU % (original size) |" in markdown
    assert "| agreement % (non-void) |" in markdown
    assert "ΔmIoU points vs Keras" in markdown
    assert "agreement ≥ 97.00 %" in markdown  # the bound in the same unit as the column, not 0.97
    assert "mIoU %" in result.stdout
