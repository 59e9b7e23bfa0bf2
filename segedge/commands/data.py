"""``segedge data``: generate and validate VOC-layout datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segedge.commands import user_errors

app = typer.Typer(help="Generate a VOC-format dataset, or validate one.", no_args_is_help=True)


@app.command()
@user_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create (VOC layout): new, or an existing empty folder.")],
    images: Annotated[int, typer.Option(min=3, help="Number of image/mask pairs.")] = 200,
    size: Annotated[int, typer.Option(min=32, help="Image width in pixels (heights vary 75-100 %).")] = 96,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    overwrite: Annotated[bool, typer.Option(
        help="Replace OUT if it holds a dataset segedge generated (never a folder with other files).")] = False,
) -> None:
    """Write a learnable synthetic dataset in the exact Pascal VOC 2012 layout."""
    from segedge.data.synth import SynthConfig, generate

    root = generate(out, SynthConfig(images=images, size=size, seed=seed), overwrite=overwrite)
    typer.echo(f"wrote {images} images to {root}")


@app.command()
@user_errors
def check(root: Annotated[Path, typer.Argument(help="VOC2012 folder (or its VOCdevkit parent).")]) -> None:
    """Validate every pair listed in the split files; print counts and the class histogram."""
    from segedge.data.check import check_dataset
    from segedge.labels import VOC_CLASSES

    report = check_dataset(root)
    typer.echo(f"dataset: {report.root}")
    for split, count in report.counts.items():
        typer.echo(f"  {split:<9} {count:>7} ids")
    total = sum(report.class_pixels) or 1
    typer.echo("class pixels:")
    for name, pixels in zip((*VOC_CLASSES, "void"), report.class_pixels, strict=True):
        if pixels:
            typer.echo(f"  {name:<12} {pixels:>12}  {100 * pixels / total:5.1f} %")
    if not report.ok:
        for problem in report.problems:
            typer.echo(f"error: {problem}", err=True)
        typer.echo(f"{len(report.problems)} problem(s) found", err=True)
        raise typer.Exit(3)
    typer.echo("ok")
