"""``segedge bench B1 B2 ... --out R``: several bundles of the same classes, on the same images, one frontier.

A thin layer over the single-bundle bench: each bundle is benched exactly as
``segedge bench B --out R/<name>`` would be (its own rows, report files and
parity gate), then the artifacts of all of them are put in one table and one
latency-vs-mIoU plot with the frontier marked (``segedge.bench.frontier``), and
``--budget-ms`` picks the most accurate artifact under the budget.

Comparing mIoU across bundles only means something on the same images, so the
bundles must share their classes and, without ``--data``, their reference set
(same image ids: bundles exported from one dataset and split with the same
``--eval-images``); otherwise bench refuses before measuring anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segedge.bench.frontier import Point, fastest, frontier, pick_under_budget
from segedge.bench.options import BenchConfig
from segedge.bench.report import ReportFiles, write_report
from segedge.bench.run import BenchResult, run_bench, run_name
from segedge.contract.manifest import MANIFEST_NAME, Manifest, load_manifest
from segedge.util import fileio, outputs
from segedge.util.errors import ConfigError, ModelError

JSON_NAME, MD_NAME, PLOT_NAME = "report.json", "report.md", "frontier.png"
KERAS = "keras"  # the source model's row: each sub-report has it; it is not a deployable artifact


@dataclass
class Planned:
    name: str  # the sub-report's folder under R, and the bundle's name in the table
    bundle: Path
    manifest: Manifest


@dataclass
class Benched:
    planned: Planned
    result: BenchResult
    files: ReportFiles


@dataclass
class MultiResult:
    benched: list[Benched]
    points: list[Point]
    on_frontier: set[str]  # keys of points on the frontier at their thread count
    budget_ms: float | None
    chosen: Point | None
    out: Path
    files: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(b.result.passed for b in self.benched)

    def gate_failures(self) -> list[str]:
        return [f"{b.planned.name}: {line}" for b in self.benched for line in b.result.gate_failures]


def _bundle_folder(path: Path) -> Path:
    return path.parent if path.is_file() and (path.parent / MANIFEST_NAME).is_file() else path


def plan(bundles: Sequence[Path], data: Path | None) -> list[Planned]:
    """Read every manifest and refuse, in one line naming both bundles, a pair that cannot share a table."""
    planned: list[Planned] = []
    used: set[str] = set()
    for given in bundles:
        folder = _bundle_folder(Path(given))
        manifest = load_manifest(folder)
        base = run_name(manifest, folder) or folder.name
        name, number = base, 2
        while name in used or name in (JSON_NAME, MD_NAME, PLOT_NAME):
            name, number = f"{base}-{number}", number + 1
        used.add(name)
        planned.append(Planned(name, folder, manifest))
    first = planned[0]
    for other in planned[1:]:
        if list(other.manifest.classes) != list(first.manifest.classes):
            raise ConfigError(
                f"{first.bundle} and {other.bundle} have different classes ({_classes(first.manifest)} vs "
                f"{_classes(other.manifest)}); bench several bundles only of the same classes")
        if data is None and _reference_ids(other.manifest) != _reference_ids(first.manifest):
            raise ConfigError(
                f"{first.bundle} and {other.bundle} were exported with different reference images, so their "
                "mIoU would not be comparable; pass --data DATASET to score every bundle on the same images")
    return planned


def _classes(manifest: Manifest) -> str:
    names = list(manifest.classes)
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return f"{len(names)}: {shown}"


def _reference_ids(manifest: Manifest) -> list[str]:
    ids = (manifest.reference or {}).get("ids")
    return [str(i) for i in ids] if isinstance(ids, list) else []


def model_size(manifest: Manifest) -> dict[str, Any]:
    """Encoder width, decoder widths and input size as export recorded them (width unknown: None)."""
    source = manifest.source_model or {}
    spec = manifest.preprocess
    return {"encoder": source.get("encoder"), "encoder_width": source.get("encoder_width"),
            "decoder_widths": source.get("decoder_widths"), "input": f"{spec.height}x{spec.width}"}


def collect_points(benched: Sequence[Benched]) -> list[Point]:
    """One point per (bundle, artifact, threads); the Keras rows are left out (each sub-report has them)."""
    points = []
    for item in benched:
        for row in item.result.rows:
            if row.get("runtime") == KERAS:
                continue
            key = f"{item.planned.name}/{row['artifact']}@{row['threads']}"
            latency = None if row.get("error") else row.get("p50_ms")
            miou = None if row.get("error") else row.get("miou")
            path = str(item.planned.bundle / row["file"]) if row.get("file") else None
            points.append(Point(key, latency, miou, int(row["threads"]),
                                info={"bundle": item.planned.name, "row": row, "path": path}))
    return points


def frontier_keys(points: Sequence[Point]) -> set[str]:
    """Keys on the frontier, computed per thread count (1 thread and all cores are different deployments)."""
    keys: set[str] = set()
    for threads in sorted({p.threads for p in points}):
        keys.update(p.key for p in frontier(p for p in points if p.threads == threads))
    return keys


def run_several(base: BenchConfig, bundles: Sequence[Path], out: Path, *, budget_ms: float | None = None,
                gallery: int = 4, plot: bool = True, overwrite: bool = False,
                on_step: Callable[[str, int, int], None] | None = None) -> MultiResult:
    """Bench every bundle into ``out/<name>/``, then write the combined report.json, report.md and plot."""
    if base.keras_model is not None:
        raise ConfigError("--keras-model names one model; with several bundles each uses its manifest's source model")
    if budget_ms is not None and budget_ms <= 0:
        raise ConfigError(f"--budget-ms must be positive, got {budget_ms:g}")
    base.check()
    planned = plan(bundles, base.data)
    configs = [dataclasses.replace(base, bundle=item.bundle, artifacts=_artifacts(base.artifacts, item))
               for item in planned]  # a bundle with none of --format: refused before any is measured
    target = outputs.claim(out, "report", overwrite)
    out = Path(out)
    target.prepare()
    written: list[str] = []
    try:
        benched: list[Benched] = []
        for number, (item, config) in enumerate(zip(planned, configs, strict=True)):
            step = None
            if on_step is not None:
                def step(description: str, done: int, total: int, _n=number, _name=item.name) -> None:
                    on_step(f"{_name} ({_n + 1}/{len(planned)}): {description}", done, total)
            result = run_bench(config, on_step=step)
            files = write_report(result, out / item.name, gallery_count=gallery, plot=plot)
            target.record([item.name])
            written.append(item.name)
            benched.append(Benched(item, result, files))
        points = collect_points(benched)
        chosen = pick_under_budget(points, budget_ms) if budget_ms is not None else None
        multi = MultiResult(benched, points, frontier_keys(points), budget_ms, chosen, out)
        from segedge.bench.multi_report import write_combined

        written += write_combined(multi, target, plot)
    except BaseException:
        target.undo(written)
        raise
    return multi


def _artifacts(wanted: list[str] | None, item: Planned) -> list[str] | None:
    """``--format`` applies to every bundle: the names this bundle has (a name none has is refused)."""
    if not wanted:
        return None
    have = [name for name in wanted if name in item.manifest.artifacts]
    if not have:
        raise ModelError(f"{item.bundle}: has none of --format {','.join(wanted)}; it has "
                         + ", ".join(item.manifest.artifacts))
    return have


def budget_summary(multi: MultiResult) -> dict[str, Any] | None:
    """report.json's ``budget``: the pick (or null) and, when nothing fits, the fastest artifact."""
    if multi.budget_ms is None:
        return None
    chosen = multi.chosen
    quickest = fastest(multi.points) if chosen is None else None
    return {"budget_ms": multi.budget_ms, "chosen": _point_dict(chosen) if chosen else None,
            "fastest": _point_dict(quickest) if quickest else None, "line": budget_line(multi)}


def _point_dict(point: Point) -> dict[str, Any]:
    row = point.info["row"]
    return {"bundle": point.info["bundle"], "artifact": row["artifact"], "threads": point.threads,
            "p50_ms": point.latency_ms, "miou": point.miou, "path": point.info["path"]}


def budget_line(multi: MultiResult) -> str:
    """The printed answer to --budget-ms, one line."""
    if multi.budget_ms is None:
        return ""
    chosen = multi.chosen
    if chosen is not None:
        row = chosen.info["row"]
        return (f"budget {multi.budget_ms:g} ms: {chosen.info['bundle']} {row['artifact']} at "
                f"{chosen.threads} thread{'s' * (chosen.threads > 1)}: p50 {chosen.latency_ms:.2f} ms, "
                f"mIoU {100 * chosen.miou:.2f} % ({chosen.info['path']})")
    quickest = fastest(multi.points)
    if quickest is None:
        return f"budget {multi.budget_ms:g} ms: no artifact has both a latency and an mIoU"
    return (f"budget {multi.budget_ms:g} ms: no artifact runs under it on this machine; the fastest is "
            f"{quickest.info['bundle']} {quickest.info['row']['artifact']} at {quickest.threads} "
            f"thread{'s' * (quickest.threads > 1)}: p50 {quickest.latency_ms:.2f} ms")



def single_bundle_budget(result: BenchResult, files: ReportFiles, budget_ms: float) -> str:
    """--budget-ms with one bundle: the pick among its artifacts, added to its report.json; returns the line."""
    item = Benched(Planned(result.name or Path(result.config.bundle).name, Path(result.config.bundle),
                           result.manifest), result, files)
    points = collect_points([item])
    multi = MultiResult([item], points, frontier_keys(points), budget_ms, pick_under_budget(points, budget_ms),
                        files.folder)
    report = fileio.read_json_object(files.json, missing="report.json not found", fix="run the bench again")
    report["budget"] = budget_summary(multi)
    fileio.write_json(files.json, report)
    return budget_line(multi)
