"""Signs that a bench run's timings are disturbed, and the facts every report states: hand-made numbers, no model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from segedge.bench.machine import load_average, timing_warnings
from segedge.bench.report_table import machine_lines
from segedge.bench.run import run_name


def row(artifact: str, threads: int, p50: float | None, **extra) -> dict:
    return {"artifact": artifact, "threads": threads, "p50_ms": p50, "error": None, **extra}


def test_more_threads_slower_than_fewer_is_flagged_per_artifact():
    rows = [row("onnx", 1, 8.04), row("onnx", 2, 16.77),  # the busy machine's sweep
            row("int8", 1, 1.16), row("int8", 2, 0.69)]  # a healthy one
    warnings = timing_warnings(rows, cores=2)
    assert len(warnings) == 1
    assert "onnx at 2 threads 16.77 ms is 2.1x its 1-thread 8.04 ms" in warnings[0] and "int8" not in warnings[0]


def test_a_few_percent_slower_with_more_threads_is_noise_not_a_warning():
    # a tiny model's thread start-up: Keras 10.79 -> 10.99 ms in the README's sample
    assert timing_warnings([row("keras", 1, 10.79), row("keras", 2, 10.99)], cores=2) == []


def test_the_keras_row_slower_with_more_threads_is_no_sign_of_a_busy_machine():
    """TensorFlow's thread pools make a small model slower at 2 threads on an idle machine too."""
    rows = [row("keras", 1, 6.54), row("keras", 2, 7.74), row("int8", 1, 0.77), row("int8", 2, 0.50)]
    assert timing_warnings(rows, cores=2) == []
    assert len(timing_warnings([*rows, row("fp32", 1, 2.0), row("fp32", 2, 4.0)], cores=2)) == 1


def test_slower_is_judged_against_every_smaller_thread_count():
    rows = [row("fp32", 4, 5.0), row("fp32", 1, 4.0), row("fp32", 2, 2.0)]  # out of order on purpose
    warnings = timing_warnings(rows, cores=4)
    assert len(warnings) == 1 and "at 4 threads 5.00 ms" in warnings[0] and "1-thread 4.00 ms" in warnings[0]


def test_every_artifact_slower_with_more_threads_is_one_warning():
    rows = [row(name, threads, p50) for name in ("fp32", "int8", "onnx") for threads, p50 in ((1, 2.0), (2, 4.0))]
    warnings = timing_warnings(rows, cores=2)
    assert len(warnings) == 1 and all(f"{name} at 2 threads" in warnings[0] for name in ("fp32", "int8", "onnx"))


def test_rows_without_a_latency_are_ignored():
    rows = [row("int8", 1, 1.0), row("int8", 2, None, error="timed out"), row("onnx", 1, None)]
    assert timing_warnings(rows, cores=2) == []


def test_load_above_the_core_count_is_flagged_once_with_the_highest_reading():
    rows = [row("fp32", 1, 4.0, load_before=0.4, load_after=2.6), row("fp32", 2, 2.0, load_before=3.1,
                                                                    load_after=1.0)]
    warnings = timing_warnings(rows, cores=2, loads={"before": [0.5, 0.4, 0.3], "after": [1.2, 0.9, 0.5]})
    assert len(warnings) == 1
    assert "load average 3.10 (before fp32 at 2 threads; 2 reading(s) in all)" in warnings[0]
    assert "above the machine's 2 cores" in warnings[0]


def test_load_at_or_below_the_core_count_or_unreadable_is_quiet():
    rows = [row("fp32", 1, 4.0, load_before=2.0, load_after=None)]
    assert timing_warnings(rows, cores=2, loads={"before": [2.0, 1.0, 1.0], "after": None}) == []
    assert timing_warnings(rows, cores=None, loads={"before": [9.0, 9.0, 9.0]}) == []


def test_load_average_is_three_numbers_where_readable():
    values = load_average()
    assert values is None or (len(values) == 3 and all(v >= 0 for v in values))


def test_machine_lines_state_the_cpu_and_the_load_before_and_after():
    lines = machine_lines({"cpu_model": "AMD EPYC 9V74", "cores": 2, "usable_cores": 2, "cpu_flags": ["avx2"],
                           "load_average_before": [0.54, 0.3, 0.2], "load_average_after": None})
    assert lines[0].startswith("CPU: AMD EPYC 9V74 (2 cores")
    assert lines[1] == "Load average (1 / 5 / 15 min): 0.54 / 0.30 / 0.20 before the run, not readable after"


def test_reports_are_titled_with_the_run_not_the_bundle_folder():
    def manifest(source):
        return SimpleNamespace(source_model=source)

    assert run_name(manifest({"file": "model.keras", "run": "/runs/voc-224-mnv2"}), Path("/x/bundle")) == "voc-224-mnv2"
    assert run_name(manifest({"path": "/models/my_unet.keras"}), Path("/x/bundle")) == "my_unet"  # brought model
    assert run_name(manifest({}), Path("/x/bundle")) == "bundle"  # nothing recorded: the folder is all there is
