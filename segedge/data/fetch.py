"""``segedge data fetch``: the official Pascal VOC 2012 and SBD archives, verified and unpacked atomically.

Sources and checksums are the publishers' (the same ones torchvision's VOCSegmentation and
SBDataset pin). An archive is downloaded into segedge's cache (``download.cache_dir()``),
resumable there as ``<name>.part``, and only a checksum-verified archive is unpacked.

``voc2012 DEST``: DEST becomes the ``VOCdevkit/VOC2012`` folder of the tar (JPEGImages,
SegmentationClass, ImageSets/Segmentation, ...). It is unpacked under a
``.segedge-tmp-*`` name beside DEST and renamed into place whole, so a killed fetch leaves
no DEST at all (the temp folder is removed by the next run).

``sbd DEST``: DEST is a VOC2012 folder (fetched as above); adds ``SegmentationClassAug/``
and ``ImageSets/Segmentation/train_aug.txt`` (see ``segedge.data.sbd``). The mask folder
is built under a temp name and renamed; the split file is written last, atomically, so
``--split train_aug`` only ever sees a complete mask folder.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from segedge import fileio, outputs
from segedge.data.download import Checksum, DownloadError, cache_dir, download, is_url, local_path, verify
from segedge.data.sbd import (
    SBD_EXTRA,
    SBD_ROOT,
    TRAIN_AUG,
    add_missing_images,
    sbd_ids,
    train_aug_ids,
    write_aug_masks,
)
from segedge.data.voc import AUG_MASK_DIR, IMAGE_DIR, MASK_DIR, SPLIT_DIR, VocDataset
from segedge.errors import ConfigError, DataError, OutputError
from segedge.optional import require
from segedge.progress import track


@dataclass(frozen=True)
class ArchiveSource:
    """One published archive: where it is, its published checksum, the folder inside that matters."""

    name: str
    url: str
    filename: str
    checksum: Checksum
    root: str
    size: int | None = None


SOURCES: dict[str, ArchiveSource] = {
    "voc2012": ArchiveSource(
        name="voc2012",
        url="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
        filename="VOCtrainval_11-May-2012.tar",
        checksum=Checksum("md5", "6cd6e144f989b92b3379bac3b3de84fd"),
        root="VOCdevkit/VOC2012",
        size=1_999_639_040,
    ),
    "sbd": ArchiveSource(
        name="sbd",
        url="http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
        filename="benchmark.tgz",
        checksum=Checksum("md5", "82b4d87ceb2ed10f6038a1cba92111cb"),
        root=SBD_ROOT.as_posix(),
    ),
}


@dataclass
class FetchResult:
    root: Path
    archive: Path
    archive_kept: bool
    counts: dict[str, int] = field(default_factory=dict)


def fetch(name: str, dest: str | os.PathLike[str], origin: str | None = None, overwrite: bool = False,
          keep_archive: bool = False) -> FetchResult:
    """Fetch ``name`` (a key of ``SOURCES``) into ``dest``; see the module docstring."""
    if name not in SOURCES:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {sorted(SOURCES)}")
    dest = Path(dest).expanduser().absolute()
    if name == "voc2012":
        return fetch_voc(dest, origin, overwrite, keep_archive)
    return fetch_sbd(dest, origin, overwrite, keep_archive)


def obtain_archive(source: ArchiveSource, origin: str | None) -> tuple[Path, bool]:
    """The verified archive, and whether segedge downloaded it (so may delete it afterwards)."""
    hint = (f"or download {source.url} yourself and pass it with --from FILE "
            f"(or a mirror with --from URL)")
    if origin is not None and not is_url(origin):
        path = local_path(origin)
        if not path.is_file():
            raise ConfigError(f"--from {origin}: file not found; pass the {source.filename} you have, or a URL")
        verify(path, source.checksum, hint=f"pass the official {source.filename} (or drop --from to download it)",
               what=f"--from {path}")
        return path, False
    url = origin or source.url
    target = cache_dir() / source.filename
    return download(url, target, checksum=source.checksum, size=source.size if origin is None else None,
                    hint=hint, description=f"{source.name}: {source.filename}"), True


def extract(archive: Path, prefix: str, out: Path, keep: Callable[[str], bool] = lambda rel: True) -> int:
    """Unpack the members under ``prefix/`` of ``archive`` into ``out`` (prefix stripped).

    Uses tarfile's ``data`` filter: no absolute paths, ``..``, devices or links out of ``out``.
    """
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in track(tar, f"Unpacking {archive.name}"):
                name = posixpath.normpath(member.name.lstrip("/"))
                if not name.startswith(prefix + "/"):
                    continue
                rel = name[len(prefix) + 1:]
                if not keep(rel):
                    continue
                tar.extract(member.replace(name=rel, deep=False), out, filter="data")
                count += 1
    except tarfile.FilterError as exc:
        raise DataError(f"{archive}: refusing an unsafe archive member ({exc})") from exc
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DownloadError(f"{archive}: not a readable archive ({exc}); delete it and fetch again") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"{out}: cannot write: the disk is full while unpacking {archive.name}; "
                              "free space and run again (nothing was left in place)") from exc
        raise
    if not count:
        raise DownloadError(f"{archive}: holds nothing under {prefix}/; is it the right archive?")
    return count


def _claim_sbd_outputs(aug_dir: Path, split_file: Path, overwrite: bool) -> outputs.Claim:
    """SBD's masks are a marked dataset folder of their own inside DEST; train_aug.txt belongs to them.

    The same rule as every output (segedge.outputs): a SegmentationClassAug/ segedge did not write is never
    replaced, even with --overwrite, and neither is a train_aug.txt that came without segedge's masks.
    """
    target = outputs.claim(aug_dir, "dataset", overwrite)
    if split_file.exists() and target.state in ("new", "empty"):
        raise OutputError(f"{split_file}: not written by segedge (no segedge {AUG_MASK_DIR}/ beside it); "
                          "move it away to add SBD")
    return target


def fetch_voc(dest: Path, origin: str | None, overwrite: bool, keep_archive: bool) -> FetchResult:
    source = SOURCES["voc2012"]
    target = outputs.claim(dest, "dataset", overwrite)  # before a 2 GB download, not after it
    archive, ours = obtain_archive(source, origin)
    with outputs.build(target) as tmp:
        count = extract(archive, source.root, tmp)
        for needed in (IMAGE_DIR, MASK_DIR, str(SPLIT_DIR / "train.txt"), str(SPLIT_DIR / "val.txt")):
            if not (tmp / needed).exists():
                raise DataError(f"{archive}: has no {source.root}/{needed}; is it the VOC 2012 trainval tar?")
    kept = _drop_archive(archive, ours, keep_archive)
    return FetchResult(root=dest, archive=archive, archive_kept=kept, counts={"files": count})


def fetch_sbd(dest: Path, origin: str | None, overwrite: bool, keep_archive: bool) -> FetchResult:
    source = SOURCES["sbd"]
    try:
        voc = VocDataset.open(dest)
        voc_train, voc_val = voc.ids("train"), voc.ids("val")
    except DataError as exc:
        raise DataError(f"{exc.message} (SBD is added to a VOC 2012 folder: run "
                        f"'segedge data fetch voc2012 {dest}' first)") from exc
    root = voc.root
    aug_dir, split_file = root / AUG_MASK_DIR, voc.split_file(TRAIN_AUG)
    target = _claim_sbd_outputs(aug_dir, split_file, overwrite)
    require("scipy.io", SBD_EXTRA)  # before a 1.4 GB download, not after it
    archive, ours = obtain_archive(source, origin)
    fileio.remove_stale_temps(root.parent, f"{root.name}-sbd-")
    work = Path(tempfile.mkdtemp(prefix=f"{fileio.TMP_PREFIX}{root.name}-sbd-", dir=root.parent))
    try:
        have = {p.stem for p in (root / IMAGE_DIR).glob("*.jpg")}

        def wanted(rel: str) -> bool:
            if rel in ("train.txt", "val.txt") or rel.startswith("cls/"):
                return True
            return rel.startswith("img/") and posixpath.splitext(posixpath.basename(rel))[0] not in have

        extract(archive, source.root, work, keep=wanted)
        sbd_train, sbd_val = sbd_ids(work)
        sbd_all = sorted(set(sbd_train) | set(sbd_val))
        ids = train_aug_ids(voc_train, voc_val, sbd_train, sbd_val)
        added = add_missing_images(work, root, sbd_all)
        with outputs.build(target) as tmp:
            masks = write_aug_masks(work, root, tmp, sbd_all)
        fileio.write_text(split_file, "\n".join(ids) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kept = _drop_archive(archive, ours, keep_archive)
    return FetchResult(root=root, archive=archive, archive_kept=kept,
                       counts={TRAIN_AUG: len(ids), "masks": masks, "images added": added})


def _drop_archive(archive: Path, ours: bool, keep: bool) -> bool:
    """Delete a downloaded archive once unpacked (never one the user passed with --from)."""
    if ours and not keep:
        archive.unlink(missing_ok=True)
        return False
    return True
