"""``segedge data``: generate and validate VOC-layout datasets."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from segedge.commands import user_errors

app = typer.Typer(help="Generate, download or validate a VOC-format dataset.", no_args_is_help=True)


@app.command()
@user_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create (VOC layout): new, or an existing empty folder.")],
    images: Annotated[int, typer.Option(min=3, help="Number of image/mask pairs.")] = 200,
    size: Annotated[int, typer.Option(
        min=32, help="Long side of each image in pixels (VOC: 500); aspect ratios vary as in VOC.")] = 96,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (0 or more): same seed, same bytes.")] = 0,
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


class FetchName(str, Enum):
    voc2012 = "voc2012"  # keys of segedge.data.fetch.SOURCES
    sbd = "sbd"


@app.command()
@user_errors
def fetch(
    name: Annotated[FetchName, typer.Argument(
        help="voc2012: Pascal VOC 2012 trainval (a 2 GB tar); sbd: the SBD masks, added to a VOC2012 DEST.")],
    dest: Annotated[Path, typer.Argument(
        help="voc2012: the VOC2012 folder to create; sbd: an existing VOC2012 folder to add to.")],
    origin: Annotated[str | None, typer.Option(
        "--from", metavar="FILE_OR_URL",
        help="Use an archive you already have (checked against the official checksum, never deleted) "
             "or download from this mirror URL instead of the official site.")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace DEST (voc2012), or SegmentationClassAug/ and train_aug.txt (sbd), if they exist.")] = False,
    keep_archive: Annotated[bool, typer.Option(
        help="Keep the downloaded archive in the cache after unpacking (default: delete it).")] = False,
) -> None:
    """Download an official archive, verify its md5, unpack it atomically, then run 'data check' on DEST.

    Downloads go to ~/.cache/segedge/downloads ($SEGEDGE_CACHE overrides), never into DEST.

    An interrupted download stays there as a .part file that the next run resumes (HTTP Range).

    DEST appears whole or not at all: it is unpacked under a temporary name beside it, then renamed.

    sbd adds SegmentationClassAug/*.png and ImageSets/Segmentation/train_aug.txt: train with --split train_aug.
    """
    from segedge.data.fetch import fetch as fetch_archive

    result = fetch_archive(name.value, dest, origin=origin, overwrite=overwrite, keep_archive=keep_archive)
    counts = ", ".join(f"{value} {key}" for key, value in result.counts.items())
    where = f"archive kept: {result.archive}" if result.archive_kept else "downloaded archive deleted"
    typer.echo(f"{name.value}: {counts} -> {result.root} ({where})")
    check(result.root)
