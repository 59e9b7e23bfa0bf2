"""bench on a Pi: time budget (--min-secs/--max-secs), child timeout, cooldown, temperature and throttling."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from segedge.bench import run as bench_run
from segedge.bench import spawn
from segedge.bench.child import ChildJob
from segedge.bench.machine import cpu_temperature, cpu_temperatures, heat_state, throttled
from segedge.bench.run import BenchConfig, run_bench
from segedge.bench.timing import time_invoke
from segedge.util.errors import ConfigError

pytest.importorskip("ai_edge_litert")

TICK = 0.01  # each fake inference sleeps at least this long (time.sleep never returns early)


def _sleepy(_tensor):
    time.sleep(TICK)


# --- the time budget, on a fake inference whose duration has a floor ---

def test_min_secs_keeps_timing_past_runs():
    start = time.perf_counter()
    samples = time_invoke(_sleepy, None, warmup=0, runs=1, min_secs=0.1)
    assert time.perf_counter() - start >= 0.1
    # before the last call less than 0.1 s had passed, and each call took >= TICK: at most 0.1 / TICK + 1 calls
    assert 1 <= len(samples) <= 11
    assert all(s >= TICK * 1e9 for s in samples)


def test_runs_still_count_when_min_secs_is_short():
    assert len(time_invoke(_sleepy, None, warmup=0, runs=5, min_secs=0.001)) >= 5


def test_max_secs_stops_before_runs():
    samples = time_invoke(_sleepy, None, warmup=0, runs=10_000, max_secs=0.05)
    assert 1 <= len(samples) <= 6  # 0.05 / TICK + 1


def test_defaults_time_exactly_runs_and_zero_runs_is_warmup_only():
    calls = []
    assert len(time_invoke(calls.append, 1, warmup=2, runs=7)) == 7 and len(calls) == 9
    assert time_invoke(calls.append, 1, warmup=3, runs=0) == [] and len(calls) == 12


@pytest.mark.parametrize("kwargs, option", [({"min_secs": -1}, "--min-secs"), ({"cooldown": -1}, "--cooldown"),
                                            ({"min_secs": 2, "max_secs": 1}, "--max-secs"),
                                            ({"child_timeout": 0}, "--child-timeout")])
def test_bad_budget_options(kwargs, option, tmp_path):
    with pytest.raises(ConfigError, match=option):
        BenchConfig(tmp_path, **kwargs).check()


# --- the child timeout ---

def test_a_hung_child_is_killed_and_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(spawn, "child_command",
                        lambda job, result: [sys.executable, "-c", "import time; time.sleep(600)"])
    job = ChildJob("int8", "x.tflite", "tflite", 1, 0, 1, {}, "ref.npy")
    start = time.perf_counter()
    result = spawn.run_child(job, tmp_path, 0, timeout=1)
    assert time.perf_counter() - start < 60
    assert result == {"ok": False, "error": result["error"]} and result["error"].startswith("timed out after 1 s")


# --- temperature and throttling, from a fake /sys tree and a fake vcgencmd ---

def _fake_sys(root: Path, zones: dict[str, int]) -> Path:
    for i, (name, millideg) in enumerate(zones.items()):
        zone = root / "class" / "thermal" / f"thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "temp").write_text(f"{millideg}\n")
        (zone / "type").write_text(f"{name}\n")
    return root


def _fake_vcgencmd(folder: Path, value: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "vcgencmd"
    tool.write_text(f"#!/bin/sh\necho throttled={value}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


def test_thermal_zones_are_read_in_celsius(tmp_path):
    root = _fake_sys(tmp_path, {"cpu-thermal": 61_326, "gpu-thermal": 55_000})
    assert cpu_temperatures(root) == {"cpu-thermal": 61.326, "gpu-thermal": 55.0}
    assert cpu_temperature(root) == 61.326
    assert cpu_temperature(tmp_path / "empty") is None


def test_throttled_bits_follow_the_firmware_documentation(tmp_path):
    # 0x50005: bits 0 (under-voltage), 2 (throttled), 16 and 18 (both have occurred)
    state = throttled(str(_fake_vcgencmd(tmp_path, "0x50005")))
    assert state == {"raw": "0x50005", "flags": ["under-voltage now", "throttled now", "under-voltage has occurred",
                                                  "throttling has occurred"]}
    assert throttled(str(_fake_vcgencmd(tmp_path / "ok", "0x0"))) == {"raw": "0x0", "flags": []}
    assert throttled(str(tmp_path / "no-such-tool")) is None


def test_bench_records_heat_and_cooldown(tiny_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGEDGE_SYSFS_ROOT", str(_fake_sys(tmp_path / "sys", {"cpu-thermal": 48_500})))
    bin_dir = _fake_vcgencmd(tmp_path / "bin", "0x40004").parent
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    slept: list[float] = []
    monkeypatch.setattr(bench_run, "sleep", slept.append)
    assert heat_state()["temp_c"] == 48.5
    result = run_bench(BenchConfig(tiny_bundle, artifacts=["fp32", "int8"], threads=[1], warmup=0, runs=1,
                                   e2e_images=0, keras=False, cooldown=7.0))
    assert slept == [7.0]  # between the two artifacts, not before the first
    assert result.config.settings()["cooldown_s"] == 7.0
    for row in result.rows:
        assert row["error"] is None, row["error"]
        assert row["temp_before_c"] == row["temp_after_c"] == 48.5
        assert row["throttled_before"] == {"raw": "0x40004", "flags": ["throttled now", "throttling has occurred"]}
    assert any("48.5->48.5" in note for note in result.notes)
    assert any("throttled now" in note and "--cooldown" in note for note in result.notes)


def test_bench_budget_on_a_tiny_bundle(tiny_bundle, monkeypatch):
    monkeypatch.setenv("SEGEDGE_SYSFS_ROOT", "/nonexistent")
    capped = run_bench(BenchConfig(tiny_bundle, artifacts=["int8"], threads=[1], warmup=0, runs=1_000_000,
                                   e2e_images=0, keras=False, max_secs=0.3))
    row = capped.rows[0]
    assert row["error"] is None and 1 <= row["runs"] < 1_000_000
    assert row["temp_before_c"] is None  # nothing readable: recorded as unknown, not invented
    floor = run_bench(BenchConfig(tiny_bundle, artifacts=["int8"], threads=[1], warmup=0, runs=1,
                                  e2e_images=0, keras=False, min_secs=0.3))
    row = floor.rows[0]
    # one call of the tiny model takes milliseconds, far below 0.3 s: the floor forces more than --runs 1
    assert row["error"] is None and row["runs"] >= 2
    assert len(row["samples_ms"]) == row["runs"]
    assert floor.config.settings()["min_secs"] == 0.3 and capped.config.settings()["max_secs"] == 0.3


def test_a_hung_child_fails_its_row_not_the_bench(tiny_bundle, monkeypatch):
    monkeypatch.setattr(spawn, "child_command",
                        lambda job, result: [sys.executable, "-c", "import time; time.sleep(600)"])
    result = run_bench(BenchConfig(tiny_bundle, artifacts=["int8"], threads=[1], warmup=0, runs=1, e2e_images=0,
                                   keras=False, child_timeout=1))
    assert result.rows[0]["error"].startswith("timed out after 1 s")
    assert not result.passed and any("int8" in line for line in result.gate_failures)


def test_cli_flags_reach_the_report(tiny_bundle, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from segedge.cli import app

    monkeypatch.setenv("SEGEDGE_SYSFS_ROOT", str(_fake_sys(tmp_path / "sys", {"cpu-thermal": 70_000})))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["bench", str(tiny_bundle), "--out", str(out), "--format", "int8",
                                      "--threads", "1", "--runs", "2", "--warmup", "0", "--e2e-images", "0",
                                      "--min-secs", "0.2", "--max-secs", "5", "--cooldown", "0",
                                      "--child-timeout", "300", "--no-keras", "--no-plot", "--gallery", "0",
                                      "--min-agreement", "0", "--max-miou-drop", "100"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert {k: report["settings"][k] for k in ("min_secs", "max_secs", "cooldown_s", "child_timeout_s")} == {
        "min_secs": 0.2, "max_secs": 5.0, "cooldown_s": 0.0, "child_timeout_s": 300.0}
    row = report["rows"][0]
    assert row["temp_before_c"] == row["temp_after_c"] == 70.0 and row["runs"] >= 2
    assert "CPU temperature (°C) before->after each row: int8/1t 70.0->70.0" in (out / "report.md").read_text()


def test_cli_max_secs_below_min_secs_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from segedge.cli import app

    result = CliRunner().invoke(app, ["bench", str(tmp_path), "--out", str(tmp_path / "r"), "--min-secs", "3",
                                      "--max-secs", "1"])
    assert result.exit_code == 2, result.output
    assert [line for line in result.output.splitlines() if line.strip()][-1].startswith("error: --max-secs")
