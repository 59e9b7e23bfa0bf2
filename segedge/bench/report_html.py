"""``report.html``: the report as one self-contained file (images inlined as data URIs).

A reviewer can open it from a CI artifact or an e-mail with no folder next to
it. Everything is escaped; no scripts, no external resources.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from segedge.bench.gallery import Strip
from segedge.bench.profile import PROFILE_HEAD, profile_sections
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

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px}td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f2f2f2}.pass{color:#080;font-weight:bold}.fail{color:#b00;font-weight:bold}
tr.err td{background:#fee}img{max-width:100%;border:1px solid #ddd}figure{margin:1em 0}
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(rows: list[dict[str, Any]], columns) -> str:
    head = "".join(f"<th>{escape(c.header)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(f'<td class="{"n" if c.numeric else ""}">{escape(c.cell(row))}</td>' for c in columns)
        body.append(f'<tr class="{"err" if row.get("error") else ""}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(result: BenchResult, files: dict[str, Any], notes: list[str], plot_png: bytes | None,
                strips: list[Strip]) -> str:
    rows, config = result.rows, result.config
    name = result.name or Path(config.bundle).resolve().name
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>segedge bench: {escape(name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>segedge bench report: {escape(name)}</h1>",
             f"<p>Bundle <code>{escape(str(Path(config.bundle).resolve()))}</code>. Batch 1, {config.warmup} warm-up "
             f"+ {config.runs} timed runs of the runtime call alone, threads "
             f"{escape(', '.join(map(str, config.threads)))}, each row in a fresh process; "
             "speed-up = the baseline's p50 / the row's (below 1x: slower).</p>",
             f"<p>{escape(miou_basis(result))}</p>"]
    if result.warnings:
        parts.append("<p class='fail'>Timings may be disturbed:</p><ul>"
                     + "".join(f"<li>{escape(w)}</li>" for w in result.warnings) + "</ul>")
    parts.append(_table(rows, columns_for(rows)))
    verdict = "<span class='pass'>PASSED</span>" if result.passed else "<span class='fail'>FAILED</span>"
    parts.append(f"<h2>Parity gate: {verdict}</h2>")
    parts.append(f"<p>Bounds: {escape(bounds_text(config.bounds))}"
                 + (f"<br>{escape(gate_scope_line(result))}" if result.gate_scope else "") + "</p>")
    if result.gate_failures:
        parts.append("<ul>" + "".join(f"<li>{escape(line)}</li>" for line in result.gate_failures) + "</ul>")
    parts += ["<h2>Latency detail, and where the time goes end to end (per image)</h2>",
              _table([r for r in rows if not r.get("error")], E2E_COLUMNS)]
    errors = [r for r in rows if r.get("error")]
    if errors:
        parts.append("<h2>Errors</h2><ul>" + "".join(
            f"<li>{escape(str(r['artifact']))} ({r['threads']} threads): {escape(str(r['error']))}</li>"
            for r in errors) + "</ul>")
    sections = profile_sections(rows)
    if sections:
        parts.append("<h2>Per-op profile (--profile)</h2>")
    for section in sections:
        head = "".join(f"<th>{escape(h)}</th>" for h in PROFILE_HEAD)
        body = "".join("<tr>" + "".join(f"<td class='{'n' if 0 < k < 4 else ''}'>{escape(c)}</td>"
                                        for k, c in enumerate(cells)) + "</tr>" for cells in section.rows)
        parts.append(f"<h3>{escape(section.title)}</h3>"
                     + (f"<p class='fail'>{escape(section.outside)}</p>" if section.outside else "")
                     + f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                     + (f"<p>{escape(section.note)}</p>" if section.note else ""))
    names, class_rows = per_class_rows(result)
    if class_rows:
        head = "".join(f"<th>{escape(n)}</th>" for n in ["class", *names])
        body = "".join("<tr>" + "".join(f"<td class='{'n' if k else ''}'>{escape(c)}</td>"
                                        for k, c in enumerate(cells)) + "</tr>" for cells in class_rows)
        parts.append(f"<h2>Per-class IoU %</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("<h2>Latency vs mIoU</h2>")
    parts.append(f"<img alt='latency vs mIoU' src='{data_uri(plot_png)}'>" if plot_png else
                 "<p>(plot not drawn; see notes)</p>")
    if strips:
        parts.append("<h2>Gallery</h2><p>image | ground truth | Keras | each artifact (agreement with Keras); "
                     "regions that differ from Keras are outlined.</p>")
        parts += [f"<figure><img alt='{escape(s.image_id)}' src='{data_uri(s.png)}'>"
                  f"<figcaption>{escape(s.caption)}</figcaption></figure>" for s in strips]
    parts.append("<h2>Machine</h2><ul>" + "".join(f"<li>{escape(x)}</li>" for x in machine_lines(result.machine))
                 + "</ul>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
