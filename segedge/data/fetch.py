"""``segedge data fetch``: the official Pascal VOC 2012 and SBD archives, verified and unpacked atomically.

Sources and checksums are the publishers' (the same ones torchvision's VOCSegmentation and
SBDataset pin). An archive is downloaded into segedge's cache (``download.cache_dir()``),
resumable there as ``<name>.part``, and only a checksum-verified archive is unpacked.

The cache is shared with the user: an archive of the right name they put there is used when
its checksum matches and is never deleted; only what segedge downloaded itself (listed in the
cache's marker, see ``segedge.data.download``) is deleted after unpacking. ``--from`` takes
the archive itself, a folder holding it under its official name, or a mirror URL.

Unpacking never trusts the archive, and does not depend on tarfile's extraction filters
(Python 3.12, backported to 3.11.4; Raspberry Pi OS Bookworm ships 3.11.2 without them):
``extract`` checks every member itself and refuses the archive when one would land outside
the destination (absolute names, ``..``, links pointing out, writes through such links) or
is a device or fifo; modes lose setuid/setgid/sticky and group/other write, and ownership is
not taken from the archive. Where the filters exist, the ``data`` filter runs as well.

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

import copy
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

from segedge.data.download import (
    Checksum,
    DownloadError,
    cache_dir,
    discard,
    download,
    is_url,
    local_path,
    owns,
    verify,
)
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
from segedge.util import fileio, outputs
from segedge.util.errors import ConfigError, DataError, OutputError
from segedge.util.optional import require
from segedge.util.progress import track


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
    """The verified archive, and whether segedge downloaded it (so may delete it afterwards).

    An archive the user has (``--from``, or put into the cache under its official name) is
    used where it is and reported as not ours, so it is never deleted.
    """
    hint = (f"or download {source.url} yourself and pass it with --from FILE "
            f"(or a mirror with --from URL)")
    if origin is not None and not is_url(origin):
        path = _local_archive(origin, source)
        verify(path, source.checksum, hint=f"pass the official {source.filename} (or drop --from to download it)",
               what=f"--from {path}")
        return path, False
    url = origin or source.url
    target = cache_dir() / source.filename
    archive = download(url, target, checksum=source.checksum, size=source.size if origin is None else None,
                       hint=hint, description=f"{source.name}: {source.filename}", reuse_foreign=True)
    return archive, owns(archive)


def _local_archive(origin: str, source: ArchiveSource) -> Path:
    """``--from PATH``: the archive itself, or a folder holding it under its official name."""
    path = local_path(origin)
    expects = (f"--from takes the {source.filename} you have, a folder holding it under that name, "
               f"or a mirror URL")
    if path.is_dir():
        inside = path / source.filename
        if inside.is_file():
            return inside
        raise ConfigError(f"--from {origin}: this folder holds no {source.filename}; {expects}")
    if not path.exists():
        raise ConfigError(f"--from {origin}: no such file or folder; {expects}")
    if not path.is_file():
        raise ConfigError(f"--from {origin}: not a regular file; {expects}")
    return path


class UnsafeMember(DataError):
    """An archive member that could write outside the destination, or is not a plain file/folder/link."""


def _has_filters() -> bool:
    """tarfile's extraction filters (PEP 706): Python 3.12, 3.11.4+; absent from Bookworm's 3.11.2."""
    return hasattr(tarfile, "data_filter") and hasattr(tarfile.TarInfo, "replace")


def _filter_errors() -> tuple[type[BaseException], ...]:
    error = getattr(tarfile, "FilterError", None)  # looked up only where it exists (not in 3.11.2)
    return (error,) if isinstance(error, type) else ()


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _unsafe_name(name: str) -> str | None:
    if name.startswith("/") or os.path.isabs(name):
        return "an absolute path"
    if ".." in name.split("/"):
        return "a '..' in its path"
    return None


def _plan(member: tarfile.TarInfo, prefix: str, out: str) -> tuple[str, str | None] | None:
    """(name under ``out``, hard link target under ``out``) for a member under ``prefix/``, else None.

    Raises ``UnsafeMember`` for anything that would land outside ``out`` (checked against the
    folder as it is now, so also through links unpacked before) or is not a file, folder or link.
    """
    why = _unsafe_name(member.name)
    if why:
        raise UnsafeMember(f"{member.name!r} has {why}")
    name = posixpath.normpath(member.name)
    if not name.startswith(prefix + "/"):
        return None
    rel = name[len(prefix) + 1:]
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        kind = ("a character device" if member.ischr() else "a block device" if member.isblk()
                else "a fifo" if member.isfifo() else f"an entry of tar type {member.type!r}")
        raise UnsafeMember(f"{member.name!r} is {kind}")
    if not _inside(os.path.realpath(os.path.join(out, rel)), out):
        raise UnsafeMember(f"{member.name!r} would be written outside the destination (through a link)")
    link_rel = None
    if member.issym():
        if member.linkname.startswith("/") or os.path.isabs(member.linkname):
            raise UnsafeMember(f"{member.name!r} is a symlink to the absolute path {member.linkname!r}")
        pointee = os.path.realpath(os.path.join(out, posixpath.dirname(rel), member.linkname))
        if not _inside(pointee, out):
            raise UnsafeMember(f"{member.name!r} is a symlink pointing outside the destination ({member.linkname!r})")
    elif member.islnk():
        why = _unsafe_name(member.linkname)
        if why:
            raise UnsafeMember(f"{member.name!r} is a hard link to {member.linkname!r}, which has {why}")
        target = posixpath.normpath(member.linkname)
        if not target.startswith(prefix + "/"):
            raise UnsafeMember(f"{member.name!r} is a hard link to {member.linkname!r}, outside {prefix}/")
        link_rel = target[len(prefix) + 1:]
        if not _inside(os.path.realpath(os.path.join(out, link_rel)), out):
            raise UnsafeMember(f"{member.name!r} is a hard link pointing outside the destination")
    return rel, link_rel


def _sanitized(member: tarfile.TarInfo, rel: str, link_rel: str | None) -> tarfile.TarInfo:
    """A copy named ``rel`` with what the ``data`` filter would keep: sane modes, no foreign owner."""
    safe = copy.copy(member)
    safe.name = rel
    if link_rel is not None:
        safe.linkname = link_rel
    if member.isdir():
        safe.mode = 0o755
    else:
        mode = member.mode & 0o755  # no setuid/setgid/sticky, no group/other write
        if not mode & 0o100:
            mode &= ~0o111
        safe.mode = mode | 0o600
    safe.uid, safe.gid, safe.uname, safe.gname = os.getuid(), os.getgid(), "", ""
    return safe


def extract(archive: Path, prefix: str, out: Path, keep: Callable[[str], bool] = lambda rel: True) -> int:
    """Unpack the members under ``prefix/`` of ``archive`` into ``out`` (prefix stripped).

    Every member is checked here (``_plan``), so it is safe with or without tarfile's
    extraction filters; the first unsafe member refuses the whole archive (``UnsafeMember``).
    """
    count = 0
    root = os.path.realpath(out)
    filters = _has_filters()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in track(tar, f"Unpacking {archive.name}"):
                planned = _plan(member, prefix, root)
                if planned is None or not keep(planned[0]):
                    continue
                rel, link_rel = planned
                if filters:
                    renamed = member.replace(name=rel, deep=False, **({"linkname": link_rel} if link_rel else {}))
                    tar.extract(renamed, root, filter="data")
                else:
                    tar.extract(_sanitized(member, rel, link_rel), root, numeric_owner=True)
                count += 1
    except UnsafeMember as exc:
        raise UnsafeMember(f"{archive}: refusing an unsafe archive member: {exc.message}; nothing was "
                           "put in place (is it the official archive?)") from None
    except _filter_errors() as exc:
        raise UnsafeMember(f"{archive}: refusing an unsafe archive member ({exc})") from exc
    except KeyError as exc:  # a hard link to a member that is not in the archive
        raise DownloadError(f"{archive}: a broken archive ({exc}); delete it and fetch again") from exc
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

    The same rule as every output (segedge.util.outputs): a SegmentationClassAug/ segedge did not write is never
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
    work_name = f"{root.name}-sbd"  # a killed fetch's unpacked masks are removed by the next one
    fileio.remove_stale_temps(root.parent, work_name)
    work = Path(tempfile.mkdtemp(prefix=fileio.temp_prefix(), suffix=f"-{work_name}", dir=root.parent))
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
    """Delete an archive segedge downloaded once unpacked; one the user has (--from, or put in the cache) stays."""
    if ours and not keep:
        return not discard(archive)
    return True
