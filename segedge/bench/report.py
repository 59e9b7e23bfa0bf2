"""Write a bench result as report.json, report.md, report.html, the plot and the gallery.

Every file is written atomically (``segedge.util.fileio``) and the gallery folder is
swapped in whole, so a report folder never mixes two runs' pictures. The folder
must be new, empty or (with ``overwrite``) a report segedge wrote
(``segedge.util.outputs``); replacing one removes only the report's own files. The JSON
carries the same rows as the table plus everything needed to re-draw it; NaN
becomes null so any JSON reader can load it.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import segedge
from segedge.bench.gallery import Strip, build_gallery
from segedge.bench.profile import PROFILE_HEAD, profile_sections
from segedge.bench.report_html import render_html
from segedge.bench.report_plot import plot_latency_vs_miou
from segedge.bench.report_table import (
    E2E_COLUMNS,
    bounds_text,
    columns_for,
    gate_scope_line,
    machine_lines,
    miou_basis,
    per_class_rows,
)
from segedge.bench.run import BenchResult
from segedge.util import fileio, outputs
from segedge.util.plotting import matplotlib_available

SCHEMA_VERSION = 1
JSON_NAME, MD_NAME, HTML_NAME = "report.json", "report.md", "report.html"
PLOT_NAME, GALLERY_DIR = "latency_vs_miou.png", "gallery"
DEFAULT_GALLERY = 4


@dataclass
class ReportFiles:
    folder: Path
    json: Path
    markdown: Path
    html: Path
    plot: Path | None = None
    gallery: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _clean(value: Any) -> Any:
    """NaN/inf -> None, recursively: strict JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def report_dict(result: BenchResult, files: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The machine-readable report (``schema_version`` 1)."""
    reference = result.reference
    return _clean({
        "schema_version": SCHEMA_VERSION,
        "tool": "segedge bench",
        "segedge_version": segedge.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "name": result.name,
        "bundle": str(Path(result.config.bundle).resolve()),
        "settings": result.config.settings(),
        "machine": result.machine,
        "model": {"classes": list(result.manifest.classes), "outputs": result.manifest.model_outputs,
                  "void_handling": result.manifest.void_handling,
                  "input": result.manifest.preprocess.to_dict()},
        "reference_images": len(reference),
        "reference_ids": list(reference.ids),  # the order of every per_image_agreement list
        "rows": result.rows,
        "accuracy": result.accuracy,
        "gate": {"passed": result.passed, "bounds": result.config.bounds.to_dict(),
                 "artifacts": result.gated, "failures": result.gate_failures,
                 "covers": ["reference", "data"] if result.gate_covers_data else ["reference"],
                 "scope": gate_scope_line(result)},
        "timing_warnings": result.warnings,
        "notes": notes,
        "files": files,
    })


def _md_table(rows: list[dict[str, Any]], columns) -> list[str]:
    lines = ["| " + " | ".join(c.header for c in columns) + " |",
             "|" + "|".join("---:" if c.numeric else ":---" for c in columns) + "|"]
    lines += ["| " + " | ".join(c.cell(r) for c in columns) + " |" for r in rows]
    return lines


def render_markdown(result: BenchResult, files: dict[str, Any], notes: list[str]) -> str:
    config, rows = result.config, result.rows
    out = [f"# segedge bench report: {result.name or Path(config.bundle).resolve().name}", "",
           f"Bundle: `{Path(config.bundle).resolve()}`  ",
           f"Latency: batch 1, {config.warmup} warm-up + {config.runs} timed runs of the runtime call alone; "
           f"threads {', '.join(map(str, config.threads))}; every row measured in its own fresh process; "
           "throughput = frames per second of those calls back to back (batch 1, the row's threads); "
           "speed-up = the baseline's p50 / the row's (below 1x: slower).  ",
           miou_basis(result), ""]
    if result.warnings:
        out += ["**Timings may be disturbed:**", ""] + [f"- {w}" for w in result.warnings] + [""]
    out += _md_table(rows, columns_for(rows))
    out += ["", "## Parity gate", ""]
    out.append(f"Bounds: {bounds_text(config.bounds)}  ")
    if result.gate_scope:
        out.append(f"{gate_scope_line(result)}  ")
    out.append("**PASSED**" if result.passed else "**FAILED**")
    out += [f"- {line}" for line in result.gate_failures]
    out += ["", "## Latency detail, and where the time goes end to end (per image)", ""]
    out += _md_table([r for r in rows if not r.get("error")], E2E_COLUMNS)
    errors = [r for r in rows if r.get("error")]
    if errors:
        out += ["", "## Errors", ""] + [f"- {r['artifact']} ({r['threads']} threads): {r['error']}" for r in errors]
    sections = profile_sections(rows)
    if sections:
        out += ["", "## Per-op profile (--profile)", ""]
        for section in sections:
            out += [f"### {section.title}", ""]
            out += [f"**{section.outside}**", ""] if section.outside else []
            out += ["| " + " | ".join(PROFILE_HEAD) + " |", "|:---|---:|---:|---:|:---|"]
            out += ["| " + " | ".join(cells) + " |" for cells in section.rows]
            out += ["", section.note, ""] if section.note else [""]
    names, class_rows = per_class_rows(result)
    if class_rows:
        out += ["", "## Per-class IoU %", "", "| class | " + " | ".join(names) + " |",
                "|:---|" + "---:|" * len(names)]
        out += ["| " + " | ".join(cells) + " |" for cells in class_rows]
    out += ["", "## Latency vs mIoU", ""]
    out.append(f"![latency vs mIoU]({files['plot']})" if files.get("plot") else "(plot not drawn; see notes)")
    if files.get("gallery"):
        out += ["", "## Gallery", "",
                "image | ground truth | Keras | each artifact (agreement with Keras); "
                "regions that differ from Keras are outlined.", ""]
        for item in files["gallery"]:
            out += [f"**{item['caption']}**", "", f"![{item['id']}]({item['file']})", ""]
    out += ["", "## Machine", ""] + [f"- {line}" for line in machine_lines(result.machine)]
    if notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(out) + "\n"


def _keras_miou_for_plot(result: BenchResult) -> float | None:
    """Keras mIoU on the set the plotted rows were scored on, or None when bench has none for that set."""
    keras = result.accuracy.get("keras")
    main = next((result.accuracy[n] for n in result.gated if n in result.accuracy), None)
    if main is None:
        return keras.get("miou") if keras else None
    if keras and keras.get("eval_set") == main.get("eval_set"):
        return keras.get("miou")
    if main.get("eval_set") == result.reference.name:  # rows scored on the reference set, as the gate is
        return main.get("keras_miou_reference")
    return None


REPORT_ENTRIES = (JSON_NAME, MD_NAME, HTML_NAME, PLOT_NAME, GALLERY_DIR)  # what the report marker may own


def write_report(result: BenchResult, folder: str | os.PathLike[str], gallery_count: int = DEFAULT_GALLERY,
                 plot: bool = True, overwrite: bool = False) -> ReportFiles:
    """All report files into ``folder``: new, empty, or with ``overwrite`` a report segedge wrote (its own
    files are replaced; other files there are left alone)."""
    target = outputs.claim(folder, "report", overwrite)
    folder = Path(folder)
    notes = list(result.notes)
    files: dict[str, Any] = {"json": JSON_NAME, "markdown": MD_NAME, "html": HTML_NAME, "plot": None, "gallery": []}
    report = ReportFiles(folder, folder / JSON_NAME, folder / MD_NAME, folder / HTML_NAME, notes=notes)

    target.prepare()  # nothing listed yet: each entry is recorded in the marker once it is written
    try:
        plot_png = None
        if not plot:
            notes.append("plot skipped (--no-plot)")
        elif not matplotlib_available():
            notes.append('plot skipped: matplotlib is not installed (pip install "segedge[bench]")')
        else:
            plot_png = plot_latency_vs_miou(result.rows, f"{result.name or Path(result.config.bundle).name}: "
                                            "latency vs mIoU",
                                            _keras_miou_for_plot(result), result.config.bounds.max_miou_drop)
            if plot_png is None:
                notes.append("plot skipped: no artifact has both a latency and an mIoU")
        if plot_png is not None:
            fileio.write_bytes(folder / PLOT_NAME, plot_png)
            target.record([PLOT_NAME])
            files["plot"], report.plot = PLOT_NAME, folder / PLOT_NAME

        artifact_masks = {n: result.predictions[n] for n in result.gated if n in result.predictions}
        strips: list[Strip] = []
        if gallery_count > 0 and artifact_masks:
            strips = build_gallery(result.reference, artifact_masks, result.manifest.num_classes,
                                   gallery_count, result.manifest.palette, list(result.manifest.classes))
            with fileio.atomic_dir(folder / GALLERY_DIR) as tmp:
                for strip in strips:
                    (tmp / strip.name).write_bytes(strip.png)
            target.record([GALLERY_DIR])
            files["gallery"] = [{"file": f"{GALLERY_DIR}/{s.name}", "id": s.image_id, "caption": s.caption}
                                for s in strips]
            report.gallery = [folder / GALLERY_DIR / s.name for s in strips]

        fileio.write_json(report.json, report_dict(result, files, notes))
        target.record([JSON_NAME])
        fileio.write_text(report.markdown, render_markdown(result, files, notes))
        target.record([MD_NAME])
        fileio.write_text(report.html, render_html(result, files, notes, plot_png, strips))
        target.record([HTML_NAME])
    except BaseException:
        target.undo(REPORT_ENTRIES)  # no half report: what this call wrote goes; a rerun needs no --overwrite
        raise
    return report
