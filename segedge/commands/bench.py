"""``segedge bench``: speed, memory, size and accuracy of every artifact, and the parity gate.

Runs in the edge install (no TensorFlow); the Keras row appears only where
TensorFlow and the source model are available. Heavy modules are imported in
the command body so ``segedge --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from segedge.commands import user_errors
from segedge.commands._vocab import renamed_list


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr, advanced once per measuring process."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from segedge.util.progress import stderr

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        task = progress.add_task("benchmarking", total=None)

        def step(description: str, done: int, total: int) -> None:
            progress.update(task, description=f"benchmarking {description}", completed=done, total=total)

        yield step


def _warn(result) -> None:
    """Signs that the timings are disturbed, on stderr: a busy machine must not pass for a slow model."""
    from rich.markup import escape

    from segedge.util.progress import stderr

    for line in result.warnings:
        stderr.print(f"[yellow]warning:[/] timings may be disturbed: {escape(line)}", highlight=False)


def _print_table(result, files) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from segedge.bench.report_table import columns_for, gate_scope_line, miou_basis_line

    columns = columns_for(result.rows, compact=True)
    table = Table(title=f"segedge bench: {result.name or Path(result.config.bundle).name}", title_style="bold")
    for column in columns:
        table.add_column(column.short_header, justify="right" if column.numeric else "left",
                         no_wrap=not column.numeric)
    for row in result.rows:
        style = "red" if row.get("error") else None
        table.add_row(*(column.cell(row) for column in columns), style=style)
    console = Console()
    console.print(table)
    console.print(escape(miou_basis_line(result)), highlight=False)
    for row in result.rows:
        if row.get("error"):
            line = f"{row['artifact']} ({row['threads']} threads): {row['error']}"
            console.print(f"[red]{escape(line)}[/]", highlight=False)
    for row in result.rows:
        flagged = (row.get("profile") or {}).get("outside_xnnpack")
        if flagged:
            console.print(f"profile: {escape(row['artifact'])}: outside XNNPACK: {escape(', '.join(flagged))}",
                          highlight=False)
    for note in files.notes:
        console.print(f"note: {escape(note)}", highlight=False)  # unescaped, rich took "[bench]" for markup
    verdict = "[green]passed[/]" if result.passed else "[red]FAILED[/]"
    if result.config.data is not None:  # say what the verdict covers where a reader could assume more
        verdict += (" on the reference set and the --data images" if result.gate_covers_data else
                    " [yellow]on the reference set only[/] (the --data images were not judged)")
        if not result.gate_covers_data:
            console.print(f"note: {escape(gate_scope_line(result))}", highlight=False)
    console.print(f"parity gate: {verdict}; report: {files.markdown} (also report.json, report.html"
                  + (f", {files.plot.name}" if files.plot else "") + f", {len(files.gallery)} gallery strips)",
                  highlight=False, soft_wrap=True)  # one line, whole, for a pipeline's grep


def _print_several(multi) -> None:
    """The combined table (every bundle's artifacts, frontier marked), the budget's pick and each bundle's gate."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from segedge.bench.multi import budget_line
    from segedge.bench.multi_report import HEADERS, TERMINAL_HEADERS, cells, table_rows

    # Twelve columns do not fit 80 in boxes: short headers, no box, the gate in the lines below (a failed
    # bundle's rows in red), text never cut; a pipe or CI log (no terminal, no COLUMNS) gets 160 columns.
    table = Table(title=f"segedge bench: {len(multi.benched)} bundles", title_style="bold", box=box.SIMPLE_HEAD,
                  padding=(0, 1, 0, 0), pad_edge=False)
    shown = [i for i, header in enumerate(HEADERS) if header != "gate"]
    rows = table_rows(multi)
    texts = [cells(row) for row in rows]
    for i in shown:  # a header may wrap between its words; a value or a word is never cut
        text = HEADERS[i] in ("bundle", "encoder", "input", "artifact", "frontier")
        header = TERMINAL_HEADERS.get(HEADERS[i], HEADERS[i])
        widest = max([len(word) for word in header.split()] + [len(t[i]) for t in texts])
        table.add_column(header, justify="left" if text else "right", no_wrap=text, min_width=widest)
    for row, text in zip(rows, texts, strict=True):
        style = "red" if row["error"] or not row["gate_passed"] else ("bold" if row["chosen"] else None)
        table.add_row(*(text[i] for i in shown), style=style)
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(width=160 if wide else None)
    console.print(table)
    if multi.budget_ms is not None:
        console.print(escape(budget_line(multi)), highlight=False, soft_wrap=True)
    for item in multi.benched:
        verdict = "[green]passed[/]" if item.result.passed else "[red]FAILED[/]"
        console.print(f"parity gate {escape(item.planned.name)}: {verdict}; report: "
                      f"{escape(str(item.files.markdown))}", highlight=False, soft_wrap=True)
    console.print(f"combined report: {escape(str(multi.out / 'report.md'))} (also report.json"
                  + (", frontier.png" if multi.files.get("plot") else "") + ")", highlight=False, soft_wrap=True)


@user_errors
def bench(
    bundles: Annotated[list[Path], typer.Argument(
        metavar="BUNDLE",
        help="Bundle folder written by 'segedge export' (manifest.json). Several bundles of the same classes: "
             "each is benched into OUT/<name>/, and OUT/report.md, report.json and frontier.png put all their "
             "artifacts in one table and one latency-vs-mIoU plot with the frontier marked.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Report folder (new or empty): report.md/.json/.html, plot, gallery/.")],
    budget_ms: Annotated[float | None, typer.Option(
        "--budget-ms", metavar="MS", show_default=False,
        help="Pick the most accurate artifact whose p50 is at most MS milliseconds on this machine (at any "
             "--threads value; the pick names its threads): printed, and in report.json's 'budget'.")] = None,
    data: Annotated[Path | None, typer.Option(
        help="Dataset folder (VOC layout or images/ + masks/ pairs) whose classes are the bundle's: score mIoU "
             "on its val split at original resolution instead of the bundle's reference images.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use at most this many --data val images.")] = None,
    artifacts: Annotated[list[str] | None, typer.Option(
        "--format", metavar="NAME", show_default=False,
        help="Artifact to bench (fp32, int8, onnx, ...). Repeat it or give a comma list (--format fp32,int8). "
             "Default: every artifact in the manifest.")] = None,
    threads: Annotated[list[str] | None, typer.Option(
        "--threads", metavar="N", show_default=False,
        help="Thread count to run each artifact with; repeat it or give a comma list to sweep several "
             "(--threads 1,4). Default: 1 and the number of usable cores.")] = None,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs before timing.")] = 10,
    runs: Annotated[int, typer.Option(min=1, help="Timed runs per artifact and thread count (the least, "
                                                  "with --min-secs).")] = 100,
    min_secs: Annotated[float, typer.Option(
        "--min-secs", metavar="SECONDS", min=0.0,
        help="Time budget, as TFLite's benchmark_model: keep timing each artifact until --runs calls AND this "
             "many seconds.")] = 0.0,
    max_secs: Annotated[float | None, typer.Option(
        "--max-secs", metavar="SECONDS", min=0.0, show_default=False,
        help="Stop timing an artifact after this many seconds, even before --runs calls (at least one).")] = None,
    cooldown: Annotated[float, typer.Option(
        "--cooldown", metavar="SECONDS", min=0.0,
        help="Idle seconds between artifacts, so a hot board (a Pi 4 throttles at 80 °C) starts each cooler. "
             "CPU temperature and throttling before and after each row go into the report where readable.")] = 0.0,
    child_timeout: Annotated[float, typer.Option(
        "--child-timeout", metavar="SECONDS", min=1.0,
        help="Kill a measuring process after this long; its row fails with 'timed out' and the bench goes "
             "on.")] = 1800.0,
    e2e_images: Annotated[int, typer.Option(
        min=0, help="Images timed end to end (load + preprocess + infer + postprocess).")] = 10,
    keras: Annotated[bool | None, typer.Option(
        "--keras/--no-keras",
        help="Add the original Keras model as a row (needs TensorFlow). Default: when TensorFlow and the "
             "model are available.")] = None,
    keras_model: Annotated[Path | None, typer.Option(
        help="The Keras model for that row. Default: the source model recorded in the manifest.")] = None,
    max_miou_drop: Annotated[float, typer.Option(
        "--max-miou-drop", metavar="POINTS", min=0.0,
        help="Gate: most mIoU points an artifact may lose against Keras on the reference images.")] = 1.0,
    min_agreement: Annotated[list[str] | None, typer.Option(
        help="Gate: least fraction of pixels agreeing with Keras; default 0.98. Repeat with FORMAT=VALUE "
             "to override one format, e.g. --min-agreement 0.98 --min-agreement int8=0.97.")] = None,
    gallery: Annotated[int, typer.Option(min=0, help="Gallery strips (worst and median agreement).")] = 4,
    plot: Annotated[bool, typer.Option(help="Draw latency_vs_miou.png (needs matplotlib).")] = True,
    profile: Annotated[bool, typer.Option(
        "--profile", help="Add a per-op table for each artifact (at its first --threads): time and share per op "
                          "type (onnxruntime's profiler; TFLite: each op timed alone, as LiteRT's Python API has no "
                          "op profiler) and, for TFLite, the ops that run outside XNNPACK.")] = False,
    old_artifacts: Annotated[list[str] | None, typer.Option("--artifacts", hidden=True)] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace the report segedge wrote at --out (its own files; other files there stay).")] = False,
) -> None:
    """Measure every artifact in a bundle (latency, init, memory, size, mIoU, agreement with Keras).

    Each artifact and thread count runs in its own fresh process. Writes
    REPORT_DIR/report.md, report.json, report.html, latency_vs_miou.png and
    gallery/, prints a compact table, then applies the parity gate. Exit
    status: 0 when every artifact passes the parity gate, 7 when one breaks a
    bound (one line per failing artifact; the report is written first).
    Several bundles: each into REPORT_DIR/<name>/, plus one table and
    frontier.png over all of them; --budget-ms picks the most accurate
    artifact under that p50.
    """
    from segedge.bench.gate import GateBounds, parse_min_agreement
    from segedge.bench.report import write_report
    from segedge.bench.run import BenchConfig, default_threads, parse_threads, run_bench
    from segedge.contract.targets import TARGETS, split_names
    from segedge.util import outputs
    from segedge.util.errors import ConfigError, ParityError

    if budget_ms is not None and budget_ms <= 0:
        raise ConfigError(f"--budget-ms must be a positive number of milliseconds, got {budget_ms:g}")
    if limit is not None and data is None:
        raise ConfigError("--limit caps the --data val images; without --data bench scores the bundle's "
                          "reference images (all of them): pass --data VOC_ROOT or drop --limit")
    artifacts = renamed_list(artifacts, old_artifacts, "--format", "--artifacts")
    outputs.claim(out, "report", overwrite)  # refuse before minutes of measuring; checked again when writing
    default_agreement, per_format = parse_min_agreement(min_agreement or [], TARGETS)
    config = BenchConfig(
        bundle=bundles[0], data=data, limit=limit,
        artifacts=split_names(artifacts) or None,
        threads=parse_threads(",".join(threads)) if threads else default_threads(),
        warmup=warmup, runs=runs, e2e_images=e2e_images, keras=keras, keras_model=keras_model,
        bounds=GateBounds(max_miou_drop, default_agreement, per_format),
        min_secs=min_secs, max_secs=max_secs, cooldown=cooldown, child_timeout=child_timeout, profile=profile,
    )
    if len(bundles) > 1:
        from segedge.bench.multi import run_several

        with _progress() as step:
            multi = run_several(config, bundles, out, budget_ms=budget_ms, gallery=gallery, plot=plot,
                                overwrite=overwrite, on_step=step)
        _print_several(multi)
        for item in multi.benched:
            _warn(item.result)
        if not multi.passed:
            failures = multi.gate_failures()
            raise ParityError(f"parity gate failed for {len(failures)} artifact(s):\n"
                              + "\n".join(f"  {line}" for line in failures))
        return
    with _progress() as step:
        result = run_bench(config, on_step=step)
    files = write_report(result, out, gallery_count=gallery, plot=plot, overwrite=overwrite)
    _print_table(result, files)
    if budget_ms is not None:
        from segedge.bench.multi import single_bundle_budget

        typer.echo(single_bundle_budget(result, files, budget_ms))
    _warn(result)
    if not result.passed:
        raise ParityError(f"parity gate failed for {len(result.gate_failures)} artifact(s):\n"
                          + "\n".join(f"  {line}" for line in result.gate_failures))


def register(app: typer.Typer) -> None:
    app.command(name="bench")(bench)
