"""``segedge data``: generate and validate VOC-layout datasets."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from segedge.commands import user_errors

app = typer.Typer(help="Generate, download or validate a dataset (VOC layout or images/ + masks/ pairs).",
                  no_args_is_help=True)


class Layout(str, Enum):
    voc = "voc"
    pairs = "pairs"


@app.command()
@user_errors
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to create: new, or an existing empty folder.")],
    images: Annotated[int, typer.Option(min=3, help="Number of image/mask pairs.")] = 200,
    size: Annotated[int, typer.Option(
        min=32, help="Long side of each image in pixels (VOC: 500); aspect ratios vary as in VOC.")] = 96,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (0 or more): same seed, same bytes.")] = 0,
    classes: Annotated[int, typer.Option(
        "--classes", min=2, max=21,
        help="Number of classes, background included: 21 = VOC's; fewer are named background, class1, ... "
             "and declared in OUT/classes.json.")] = 21,
    layout: Annotated[Layout, typer.Option(
        help="voc: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/; pairs: images/ + masks/ "
             "(+ classes.json, no split files: train splits by --val-fraction).")] = Layout.voc,
    overwrite: Annotated[bool, typer.Option(
        help="Replace OUT if it holds a dataset segedge generated (never a folder with other files).")] = False,
) -> None:
    """Write a learnable synthetic dataset (default: 21 VOC classes in the exact Pascal VOC 2012 layout)."""
    from segedge.data.synth import SynthConfig, generate

    config = SynthConfig(images=images, size=size, seed=seed, num_classes=classes, layout=layout.value)
    root = generate(out, config, overwrite=overwrite)
    typer.echo(f"wrote {images} images ({classes} classes, {layout.value} layout) to {root}")


@app.command()
@user_errors
def check(root: Annotated[Path, typer.Argument(
        help="Dataset folder: VOC layout (VOC2012 or its VOCdevkit parent) or pairs layout (images/ + masks/).")]
) -> None:
    """Validate every pair (VOC: listed in the split files; pairs: every image); print counts and the class
    histogram with the dataset's class names (classes.json, else VOC's 21).

    Exits 3 when any pair is unreadable or mismatched, or a mask holds a label value outside the declared
    classes (each such value is listed with its pixel count and the first files that hold it).
    """
    from segedge.data.check import check_dataset
    from segedge.util.errors import user_path

    report = check_dataset(user_path(root))  # messages show own/x for flow/../own/x
    typer.echo(f"dataset: {report.root} ({report.layout} layout, {report.classes.num_classes} classes: "
               f"{report.classes_file})")
    for split, count in report.counts.items():
        typer.echo(f"  {split:<9} {count:>7} ids")
    total = sum(report.class_pixels)
    if not total:  # no mask was read (none there, or none readable): a header over nothing says nothing
        typer.echo("class pixels: none counted (no mask could be read)")
    else:
        typer.echo("class pixels:")
    for name, pixels in zip((*report.classes.names, "void"), report.class_pixels, strict=True):
        if pixels:
            typer.echo(f"  {name:<12} {pixels:>12}  {100 * pixels / total:5.1f} %")
    if not report.ok:
        for problem in report.problems:
            typer.echo(f"error: {problem}", err=True)
        count = len(report.problems)
        typer.echo(f"{count} problem{'' if count == 1 else 's'} found", err=True)
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
        "--from", metavar="PATH_OR_URL",
        help="Use an archive you already have: the file, or a folder holding it under its official name "
             "(checked against the official checksum, never deleted); or download from this mirror URL "
             "instead of the official site.")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace DEST (voc2012), or SegmentationClassAug/ and train_aug.txt (sbd), if they exist.")] = False,
    keep_archive: Annotated[bool, typer.Option(
        help="Keep the archive segedge downloaded in the cache after unpacking (default: delete it; "
             "an archive you put there yourself is never deleted).")] = False,
) -> None:
    """Download an official archive, verify its md5, unpack it atomically, then run 'data check' on DEST.

    Downloads go to ~/.cache/segedge/downloads ($SEGEDGE_CACHE overrides), never into DEST. segedge deletes
    there only what it downloaded itself (listed in .segedge-downloads.json): an archive you put there under
    its official name is used if its md5 matches and kept; one that does not match is renamed aside
    (NAME.md5-mismatch), never deleted, and only once a fresh download has checked out.

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
