"""``segedge bench``: every artifact of a bundle measured the same way, in one table.

The parent process never loads a model. It prepares the images, then runs one
fresh child process per (artifact, thread count) (``bench_child``) so each
row's peak RSS and cold init time are its own, and collects rows as plain
dicts. An artifact that fails to load becomes a row with ``error`` set, never
a crash, and it fails the parity gate. Accuracy is scored here from the masks
the children saved, against ground truth and the bundle's Keras masks. What to
run is settled before (``options``); whether the ``--data`` images could be
judged, and how, is ``data_gate``'s.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segedge.bench.accuracy import MaskSizeError, artifact_accuracy, keras_reference_accuracy
from segedge.bench.child import KERAS, ChildJob, PredictJob, load_masks
from segedge.bench.data import EvalSet, load_dataset_val, load_reference
from segedge.bench.data_gate import judge_data
from segedge.bench.gate import class_mismatch, evaluate_gate
from segedge.bench.machine import heat_notes, heat_state, load_average, machine_info, timing_warnings
from segedge.bench.options import (  # noqa: F401 - default_threads, parse_threads: commands.bench imports them here
    BenchConfig,
    default_threads,
    parse_threads,
    resolve_keras,
    select_artifacts,
)
from segedge.bench.spawn import DEFAULT_CHILD_TIMEOUT, run_child  # noqa: F401 - tests' stand-in run_child reads it here
from segedge.contract import metadata
from segedge.contract.manifest import MANIFEST_NAME, Manifest, load_manifest, verify_artifact_file
from segedge.util.errors import ModelError
from segedge.util.optional import require_runtimes

MB = 1_000_000  # size_mb in report.json and the tables: SI megabytes, as export prints them
ROW_KEYS: tuple[str, ...] = (
    "artifact", "runtime", "dtype", "input_dtype", "threads", "file", "size_mb",
    "init_ms", "first_ms", "mean_ms", "fps", "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "runs",
    "e2e_load_ms", "e2e_preprocess_ms", "e2e_infer_ms", "e2e_postprocess_ms", "e2e_total_ms", "e2e_p50_ms",
    "e2e_images", "base_rss_mb", "peak_rss_mb",
    "miou", "miou_delta_pts", "agreement", "miou_vs_keras", "data_agreement", "data_miou_delta_pts",
    "speedup_vs_fp32", "speedup_vs_keras", "runtime_version",
    "temp_before_c", "temp_after_c", "throttled_before", "throttled_after", "load_before", "load_after", "error",
)
ACCURACY_ROW_KEYS = ("miou", "miou_delta_pts", "agreement", "miou_vs_keras")
sleep = time.sleep  # the cooldown's clock (tests replace it)


@dataclass
class BenchResult:
    config: BenchConfig
    manifest: Manifest
    machine: dict[str, Any]
    rows: list[dict[str, Any]]
    accuracy: dict[str, dict[str, Any]]  # artifact (and "keras") -> artifact_accuracy()
    reference: EvalSet
    predictions: dict[str, list[np.ndarray]]  # reference-set masks per artifact (and "keras"), original size
    gated: list[str]
    gate_failures: list[str]
    notes: list[str] = field(default_factory=list)
    gate_scope: str = ""  # what the verdict covers, in words (report.md/html/json and the printed verdict line)
    gate_covers_data: bool = False  # the --data images were judged too (the Keras model ran on them)
    warnings: list[str] = field(default_factory=list)  # signs that the timings are disturbed (timing_warnings)
    name: str = ""  # the run the bundle was exported from: the reports' title (run_name)

    @property
    def passed(self) -> bool:
        return not self.gate_failures


def run_name(manifest: Manifest, bundle: Path) -> str:
    """What the reports are titled with: the training run's folder (or a brought model's file), as export recorded.

    Every bundle written by ``make demo`` or the README's examples is a folder
    called ``bundle``; the run it came from is what tells two reports apart.
    """
    source = manifest.source_model or {}
    if isinstance(source.get("run"), str) and source["run"]:
        return Path(source["run"]).name
    if isinstance(source.get("path"), str) and source["path"]:
        return Path(source["path"]).stem
    return Path(bundle).resolve().name


def _e2e_images(evaluation: EvalSet, count: int) -> list[str]:
    """Files to time end to end: the --data images, else the reference set's originals (as files)."""
    return [str(p) for p in evaluation.image_paths[:count]]


@dataclass
class _Target:
    name: str
    path: Path
    runtime: str
    dtype: str
    error: str | None = None


def _targets(config: BenchConfig, manifest: Manifest, names: list[str], keras_model: Path | None) -> list[_Target]:
    targets = []
    for name in names:
        info = manifest.artifacts[name]
        path = config.bundle / info.file
        error = None
        try:
            verify_artifact_file(path, info)
        except ModelError as exc:
            error = exc.message
        else:  # the file is what export wrote; a manifest that contradicts its embedded metadata is refused
            try:
                embedded = metadata.read_artifact(path)
            except ModelError as exc:  # a damaged file: its row says so, as for any unreadable model
                error = exc.message
            else:
                metadata.check_manifest(path, embedded, manifest)
        targets.append(_Target(name, path, info.runtime, info.precision, error))
    if keras_model is not None:
        targets.append(_Target(KERAS, keras_model, KERAS, "fp32"))
    return targets


def _row(target: _Target, threads: int, measured: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    row.update(artifact=target.name, runtime=target.runtime, dtype=target.dtype, threads=threads,
               file=target.path.name)
    if target.path.is_file():
        row["size_mb"] = target.path.stat().st_size / MB
    if measured.get("ok"):
        row.update({k: v for k, v in measured.items() if k in ROW_KEYS or k in ("samples_ms", "profile")})
    else:
        row["error"] = measured.get("error") or target.error or "not measured"
    return row


def _add_speedups(rows: list[dict[str, Any]]) -> None:
    """p50 ratios within one run (above 1 = faster, below 1 = slower): vs the fp32 artifact of the same runtime,
    and vs Keras.

    The Keras row is the original, not a conversion of itself: its "vs fp32" is
    against the TFLite fp32 artifact (else ONNX fp32), so a Keras model slower
    than its conversion reads below 1x instead of a meaningless 1.00x.
    """
    def p50(runtime: str, threads: int) -> float | None:
        for row in rows:
            if row["runtime"] == runtime and row["dtype"] == "fp32" and row["threads"] == threads:
                return row["p50_ms"]
        return None

    for row in rows:
        if not row["p50_ms"]:
            continue
        threads = row["threads"]
        fp32 = (p50("tflite", threads) or p50("onnx", threads) if row["runtime"] == KERAS
                else p50(row["runtime"], threads))
        keras = p50(KERAS, threads)
        row["speedup_vs_fp32"] = fp32 / row["p50_ms"] if fp32 else None
        row["speedup_vs_keras"] = keras / row["p50_ms"] if keras else None


def run_bench(config: BenchConfig, on_step: Callable[[str, int, int], None] | None = None) -> BenchResult:
    """Measure every selected artifact (and Keras when available); score; apply the gate.

    ``on_step(description, done, total)`` is called before each child runs, for progress.
    """
    config.check()
    if config.bundle.is_file():  # the manifest or a model file inside the bundle was named
        if not (config.bundle.parent / MANIFEST_NAME).is_file():
            raise ModelError(f"{config.bundle}: is a file with no {MANIFEST_NAME} beside it; bench takes a bundle "
                             "folder written by 'segedge export'")
        config.bundle = config.bundle.parent
    manifest = load_manifest(config.bundle)
    names = select_artifacts(manifest, config.artifacts)
    require_runtimes(manifest.artifacts[name].runtime for name in names)  # one line, before any child runs
    spec, num_classes = manifest.preprocess, manifest.num_classes
    reference = load_reference(config.bundle, spec)
    evaluation = (load_dataset_val(config.data, config.limit, manifest.classes, config.bundle / MANIFEST_NAME,
                                   val_fraction=manifest.source_model.get("val_fraction"))
                  if config.data else None)
    keras_model, keras_note = resolve_keras(config, manifest)
    notes = [keras_note] if keras_note else []
    if not reference.has_truth:
        notes.append("the reference set has no ground truth (exported from images without masks): mIoU is n/a "
                     "and the gate checks agreement with Keras only")
    if manifest.void_handling == "class":
        notes.append(f"this model predicts void as class {num_classes}: such pixels count as misses in mIoU")
    targets = _targets(config, manifest, names, keras_model)

    rows: list[dict[str, Any]] = []
    accuracy: dict[str, dict[str, Any]] = {}
    predictions: dict[str, list[np.ndarray]] = {}
    data_predictions: dict[str, list[np.ndarray]] = {}  # --data masks per artifact (and "keras")
    mask_errors: dict[str, str] = {}
    loads = {"before": load_average()}
    with tempfile.TemporaryDirectory(prefix="segedge-bench-") as tmp:
        workdir = Path(tmp)
        np.save(workdir / "reference.npy", reference.latency_pixels)
        ref_files = [str(p) for p in reference.materialize(workdir / "reference")]
        e2e = _e2e_images(evaluation or reference, config.e2e_images)
        total, step = len(targets) * len(config.threads), 0
        for number, target in enumerate(targets):
            if number and config.cooldown and not target.error:
                sleep(config.cooldown)
            for position, threads in enumerate(config.threads):
                if on_step:
                    on_step(f"{target.name} ({target.runtime}, {threads} thread{'s' * (threads > 1)})", step, total)
                step += 1
                if target.error:
                    rows.append(_row(target, threads, {"ok": False}))
                    continue
                predict = []
                if position == 0:  # masks do not depend on the thread count: predict once
                    predict.append(PredictJob(ref_files, str(workdir / f"{step}-ref.npz")))
                    if evaluation is not None:
                        predict.append(PredictJob([str(p) for p in evaluation.image_paths],
                                                  str(workdir / f"{step}-eval.npz")))
                job = ChildJob(target.name, str(target.path), target.runtime, threads, config.warmup, config.runs,
                               spec.to_dict(), str(workdir / "reference.npy"), e2e, predict,
                               manifest=str(config.bundle / MANIFEST_NAME),
                               min_secs=config.min_secs, max_secs=config.max_secs,
                               profile=config.runs if config.profile and position == 0 else 0)
                before, load_before = heat_state(), load_average()
                measured = run_child(job, workdir, step, config.child_timeout)
                after, load_after = heat_state(), load_average()
                rows.append(_row(target, threads, measured))
                rows[-1].update(temp_before_c=before["temp_c"], temp_after_c=after["temp_c"],
                                throttled_before=before["throttled"], throttled_after=after["throttled"],
                                load_before=load_before[0] if load_before else None,
                                load_after=load_after[0] if load_after else None)
                if predict and measured.get("ok"):
                    pred_ref = load_masks(predict[0].out)
                    pred_eval = load_masks(predict[1].out) if evaluation is not None else None
                    predictions[target.name] = pred_ref
                    if pred_eval is not None:
                        data_predictions[target.name] = pred_eval
                    try:
                        accuracy[target.name] = artifact_accuracy(reference, pred_ref, num_classes, evaluation,
                                                                  pred_eval)
                    except MaskSizeError as exc:
                        mask_errors[target.name] = str(exc)
        if on_step:
            on_step("done", total, total)
    loads["after"] = load_average()

    if KERAS not in accuracy:
        accuracy[KERAS] = keras_reference_accuracy(reference, num_classes)
        predictions.setdefault(KERAS, list(reference.keras or []))
    else:
        accuracy[KERAS]["source"] = "live"
    for row in rows:
        acc = accuracy.get(row["artifact"])
        if acc and not row["error"]:
            row.update({k: acc[k] for k in ACCURACY_ROW_KEYS})
    _add_speedups(rows)
    notes.extend(heat_notes(rows))
    machine = {**machine_info(), "load_average_before": loads["before"], "load_average_after": loads["after"]}
    warnings = timing_warnings(rows, machine.get("cores"), loads)

    errors = {t.name: next((r["error"] for r in rows if r["artifact"] == t.name and r["error"]),
                           mask_errors.get(t.name, "")) for t in targets}
    verdict = judge_data(reference, evaluation, keras_model is not None, keras_note, names, data_predictions,
                         accuracy, rows, errors, num_classes)
    failures = evaluate_gate(names, accuracy, errors, config.bounds,
                             class_mismatch(manifest, reference.classes, reference.palette)) + verdict.failures
    return BenchResult(config, manifest, machine, rows, accuracy, reference, predictions, names, failures, notes,
                       gate_scope=verdict.scope, gate_covers_data=verdict.judged,
                       warnings=warnings, name=run_name(manifest, config.bundle))
