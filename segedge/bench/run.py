"""``segedge bench``: every artifact of a bundle measured the same way, in one table.

The parent process never loads a model. It prepares the images, then runs one
fresh child process per (artifact, thread count) (``bench_child``) so each
row's peak RSS and cold init time are its own, and collects rows as plain
dicts. An artifact that fails to load becomes a row with ``error`` set, never
a crash, and it fails the parity gate. Accuracy is scored here from the masks
the children saved, against ground truth and the bundle's Keras masks.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segedge import fileio, metadata
from segedge.bench.accuracy import MaskSizeError, artifact_accuracy, keras_reference_accuracy
from segedge.bench.child import KERAS, ChildJob, PredictJob, load_masks
from segedge.bench.data import EvalSet, load_dataset_val, load_reference
from segedge.bench.gate import GateBounds, class_mismatch, evaluate_gate
from segedge.bench.machine import heat_notes, heat_state, machine_info, usable_cores
from segedge.bench.spawn import DEFAULT_CHILD_TIMEOUT, run_child
from segedge.errors import ConfigError, MissingExtraError, ModelError
from segedge.manifest import MANIFEST_NAME, Manifest, load_manifest, verify_artifact_file
from segedge.optional import installed, require_runtimes

MB = 1_000_000  # size_mb in report.json and the tables: SI megabytes, as export prints them
ROW_KEYS: tuple[str, ...] = (
    "artifact", "runtime", "dtype", "input_dtype", "threads", "file", "size_mb",
    "init_ms", "first_ms", "mean_ms", "fps", "p50_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "std_ms", "runs",
    "e2e_load_ms", "e2e_preprocess_ms", "e2e_infer_ms", "e2e_postprocess_ms", "e2e_total_ms", "e2e_p50_ms",
    "e2e_images", "base_rss_mb", "peak_rss_mb",
    "miou", "miou_delta_pts", "agreement", "miou_vs_keras",
    "speedup_vs_fp32", "speedup_vs_keras", "runtime_version",
    "temp_before_c", "temp_after_c", "throttled_before", "throttled_after", "error",
)
ACCURACY_ROW_KEYS = ("miou", "miou_delta_pts", "agreement", "miou_vs_keras")
sleep = time.sleep  # the cooldown's clock (tests replace it)


def default_threads() -> list[int]:
    """1 and every usable core: the two numbers a deployer needs."""
    return sorted({1, usable_cores()})


def parse_threads(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4] (deduplicated, in order); each at least 1."""
    values: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise ConfigError(f"--threads: {part!r} is not a positive whole number (e.g. --threads 1,2,4)")
        if int(part) not in values:
            values.append(int(part))
    if not values:
        raise ConfigError("--threads: give at least one thread count, e.g. --threads 1,2")
    return values


@dataclass
class BenchConfig:
    bundle: Path
    data: Path | None = None
    artifacts: list[str] | None = None  # None = every artifact in the manifest
    threads: list[int] = field(default_factory=default_threads)
    warmup: int = 10
    runs: int = 100
    e2e_images: int = 10
    limit: int | None = None  # at most this many --data val images
    keras: bool | None = None  # None = include the Keras row when TensorFlow and the model are there
    keras_model: Path | None = None
    bounds: GateBounds = field(default_factory=GateBounds)
    min_secs: float = 0.0  # per artifact and thread count: at least `runs` timed calls AND this long ...
    max_secs: float | None = None  # ... but stop here (TFLite benchmark_model's --min_secs / --max_secs)
    cooldown: float = 0.0  # seconds of idle between artifacts, so a hot Pi starts each one cooler
    child_timeout: float = DEFAULT_CHILD_TIMEOUT
    profile: bool = False  # per-op profile of each artifact, at its first thread count (--profile)

    def check(self) -> None:
        if self.runs < 1:
            raise ConfigError(f"--runs must be at least 1, got {self.runs}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup cannot be negative, got {self.warmup}")
        if self.e2e_images < 0:
            raise ConfigError(f"--e2e-images cannot be negative, got {self.e2e_images}")
        for option, value in (("--min-secs", self.min_secs), ("--cooldown", self.cooldown)):
            if value < 0:
                raise ConfigError(f"{option} cannot be negative, got {value:g}")
        if self.max_secs is not None and self.max_secs <= 0:
            raise ConfigError(f"--max-secs must be positive, got {self.max_secs:g}")
        if self.max_secs is not None and self.max_secs < self.min_secs:
            raise ConfigError(f"--max-secs ({self.max_secs:g}) is below --min-secs ({self.min_secs:g}); "
                              "raise --max-secs or lower --min-secs")
        if self.child_timeout <= 0:
            raise ConfigError(f"--child-timeout must be positive, got {self.child_timeout:g}")
        if self.bounds.max_miou_drop < 0:
            raise ConfigError(f"--max-miou-drop cannot be negative, got {self.bounds.max_miou_drop}")

    def settings(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "data": str(self.data) if self.data else None,
                "artifacts": self.artifacts, "threads": self.threads, "warmup": self.warmup, "runs": self.runs,
                "e2e_images": self.e2e_images, "limit": self.limit, "keras": self.keras,
                "keras_model": str(self.keras_model) if self.keras_model else None,
                "min_secs": self.min_secs, "max_secs": self.max_secs, "cooldown_s": self.cooldown,
                "child_timeout_s": self.child_timeout, "profile": self.profile, "gate": self.bounds.to_dict()}


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

    @property
    def passed(self) -> bool:
        return not self.gate_failures


def select_artifacts(manifest: Manifest, wanted: list[str] | None) -> list[str]:
    if not manifest.artifacts:
        raise ModelError("the bundle's manifest lists no artifacts; re-export it")
    if not wanted:
        return list(manifest.artifacts)
    unknown = [name for name in wanted if name not in manifest.artifacts]
    if unknown:
        raise ConfigError(f"--format: {unknown[0]!r} is not in this bundle; it has "
                          + ", ".join(manifest.artifacts))
    return [name for name in manifest.artifacts if name in wanted]


def find_keras_model(manifest: Manifest, bundle: Path, explicit: Path | None) -> tuple[Path | None, str]:
    """The original model: ``--keras-model``, else the path export recorded; and why not, if none."""
    if explicit is not None:
        if not explicit.is_file():
            raise ModelError(f"--keras-model {explicit}: file not found")  # a missing model: 4, as everywhere
        return explicit, ""
    source = manifest.source_model or {}
    recorded = source.get("path") or source.get("file")
    if not isinstance(recorded, str) or not recorded:
        return None, "the manifest records no source model; pass --keras-model PATH"
    path = Path(recorded)
    candidates = [path] if path.is_absolute() else [
        *([Path(source["run"]) / path] if isinstance(source.get("run"), str) else []), bundle / path]
    for candidate in candidates:
        if candidate.is_file():
            expected = source.get("sha256")
            if expected and fileio.sha256_file(candidate) != expected:
                return None, f"{candidate} changed since export (sha256 differs); pass --keras-model to use it"
            return candidate, ""
    return None, f"{candidates[0]} (the manifest's source model) not found; pass --keras-model PATH"


def resolve_keras(config: BenchConfig, manifest: Manifest) -> tuple[Path | None, str]:
    """The Keras model to bench, or None and a note saying why the row is absent."""
    if config.keras is False:
        return None, "Keras row off (--no-keras)"
    if not installed("tensorflow"):
        if config.keras:
            raise MissingExtraError("tensorflow", "train")
        return None, "Keras row skipped: TensorFlow is not installed (the edge install)"
    path, why = find_keras_model(manifest, config.bundle, config.keras_model)
    if path is None and config.keras:
        raise ModelError(f"--keras: no Keras model to run: {why}")
    return path, (f"Keras row skipped: {why}" if path is None else "")


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
    """p50 ratios within one run: vs the fp32 artifact of the same runtime, and vs Keras."""
    def p50(runtime: str, threads: int) -> float | None:
        for row in rows:
            if row["runtime"] == runtime and row["dtype"] == "fp32" and row["threads"] == threads:
                return row["p50_ms"]
        return None

    for row in rows:
        if not row["p50_ms"]:
            continue
        fp32, keras = p50(row["runtime"], row["threads"]), p50(KERAS, row["threads"])
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
    mask_errors: dict[str, str] = {}
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
                before = heat_state()
                measured = run_child(job, workdir, step, config.child_timeout)
                after = heat_state()
                rows.append(_row(target, threads, measured))
                rows[-1].update(temp_before_c=before["temp_c"], temp_after_c=after["temp_c"],
                                throttled_before=before["throttled"], throttled_after=after["throttled"])
                if predict and measured.get("ok"):
                    pred_ref = load_masks(predict[0].out)
                    pred_eval = load_masks(predict[1].out) if evaluation is not None else None
                    predictions[target.name] = pred_ref
                    try:
                        accuracy[target.name] = artifact_accuracy(reference, pred_ref, num_classes, evaluation,
                                                                  pred_eval)
                    except MaskSizeError as exc:
                        mask_errors[target.name] = str(exc)
        if on_step:
            on_step("done", total, total)

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

    errors = {t.name: next((r["error"] for r in rows if r["artifact"] == t.name and r["error"]),
                           mask_errors.get(t.name, "")) for t in targets}
    failures = evaluate_gate(names, accuracy, errors, config.bounds,
                             class_mismatch(manifest, reference.classes, reference.palette))
    return BenchResult(config, manifest, machine_info(), rows, accuracy, reference, predictions,
                       names, failures, notes)
