"""``segedge doctor``: the first command on a Pi: can the edge run here, and what to fix if not."""

from __future__ import annotations

from typing import Annotated

import typer

from segedge.commands import user_errors


@user_errors
def doctor(
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", min=1.0,
        help="Longest a runtime may take to import and run the tiny model before it counts as hung.")] = 120.0,
) -> None:
    """Check this machine for the edge: platform and Python, each runtime (imported and run on a tiny model
    in its own process, so a wheel that crashes is one line), XNNPACK, cores, memory, cameras, CPU
    temperature and throttling.

    Exit status: 0 when the edge can run here; 6 when no runtime is installed (pip install
    "segedge[edge]"); 9 when it cannot run (a 32-bit OS, a runtime that crashes or hangs), with the fix.
    """
    from segedge.bench.doctor import diagnose, verdict
    from segedge.util.errors import EdgeUnavailableError, MissingExtraError

    diagnosis = diagnose(timeout=timeout)
    for check in diagnosis.checks:
        typer.echo(check.line())
    problem = verdict(diagnosis)
    if problem == "":
        raise MissingExtraError("ai_edge_litert, onnxruntime", "edge")
    if problem:
        raise EdgeUnavailableError(problem)
    typer.echo("the edge can run here")


def register(app: typer.Typer) -> None:
    app.command(name="doctor")(doctor)
