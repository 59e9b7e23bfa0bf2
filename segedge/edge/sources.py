"""What ``segedge predict INPUT...`` means: images, folders or glob patterns.

Each input keeps its path relative to where the search started, so outputs in
``--out`` mirror sub-folders and two ``a.jpg`` files in different folders
never overwrite each other's masks. Several INPUTs are accepted because a
shell expands an unquoted ``photos/*.jpg`` into many file names. A quoted
glob is expanded here with Python's ``glob`` rules: ``**`` is recursive,
hidden files are skipped and suffixes are case-sensitive.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segedge.data.images import IMAGE_SUFFIXES, is_image_file
from segedge.util.errors import ConfigError, DataError

_MAGIC = set("*?[")
_SUFFIXES = ", ".join(sorted(IMAGE_SUFFIXES))


@dataclass(frozen=True)
class Source:
    """One input image and the relative path (without suffix) its outputs are named after."""

    path: Path
    stem: Path

    def mask_path(self, out: Path) -> Path:
        return out / self.stem.with_name(self.stem.name + ".png")

    def overlay_path(self, out: Path, suffix: str = ".jpg") -> Path:
        return out / self.stem.with_name(self.stem.name + "_overlay" + suffix)


@dataclass
class Inputs:
    sources: list[Source] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)   # non-image files passed over
    renamed: list[Source] = field(default_factory=list)  # stems changed to avoid a clash
    single: bool = False                                 # INPUT named exactly one file
    subfolders_ignored: int = 0                          # folders seen without --recursive


def _has_magic(text: str) -> bool:
    return any(ch in _MAGIC for ch in text)


def _glob_base(pattern: str) -> Path:
    """The leading folders of a pattern that hold no wildcard: where relative names start."""
    fixed = []
    for part in Path(pattern).parts[:-1]:
        if _has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _glob_scope(pattern: str, base: Path) -> str:
    """Where a pattern looked, in words, for the 'matched no image files' message."""
    where = "the current folder" if base == Path(".") else str(base)
    if not base.is_dir():
        return f"{where}, which is not a folder"
    rest = Path(pattern).parts[0 if base == Path(".") else len(base.parts):]
    if "**" in rest:
        depth = "and all its sub-folders"
    elif len(rest) > 1:
        depth = f"{len(rest) - 1} folder level(s) below it"
    else:
        depth = "only, not its sub-folders (write ** for those)"
    return f"{where} {depth}, for {Path(*rest).as_posix()}; hidden files skipped"


def _relative(path: Path, base: Path) -> Path:
    try:
        return path.relative_to(base)
    except ValueError:
        return Path(path.name)


def _sorted(paths: list[Path], base: Path) -> list[Path]:
    return sorted(paths, key=lambda p: _relative(p, base).as_posix())


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def _scan_folder(folder: Path, recursive: bool, exclude: Path | None) -> tuple[list[Path], list[Path], int]:
    """Images and non-images under ``folder``; hidden entries and the output folder are passed over."""
    files, skipped, subfolders = [], [], 0
    entries = folder.rglob("*") if recursive else folder.iterdir()
    for entry in entries:
        relative = entry.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or _inside(entry, exclude):
            continue  # .DS_Store, .git, our own temp files, and last run's masks
        if entry.is_dir():
            subfolders += 0 if recursive else 1
        elif entry.is_file():
            (files if is_image_file(entry) else skipped).append(entry)
    return files, skipped, subfolders


def _dedupe(sources: list[Source]) -> tuple[list[Source], list[Source]]:
    """Sources whose outputs would share a name: keep the suffix (``a_jpg``), then number them."""
    counts: dict[Path, int] = {}
    for source in sources:
        counts[source.stem] = counts.get(source.stem, 0) + 1
    if all(n == 1 for n in counts.values()):
        return sources, []
    used = {stem for stem, n in counts.items() if n == 1}
    result, renamed = [], []
    for source in sources:
        stem = source.stem
        if counts[stem] == 1:
            result.append(source)
            continue
        stem = stem.with_name(f"{stem.name}_{source.path.suffix.lstrip('.').lower() or 'noext'}")
        candidate, number = stem, 2
        while candidate in used:
            candidate, number = stem.with_name(f"{stem.name}_{number}"), number + 1
        used.add(candidate)
        result.append(Source(source.path, candidate))
        if candidate != source.stem:
            renamed.append(result[-1])
    return result, renamed


def _one(text: str, recursive: bool, exclude: Path | None, inputs: Inputs) -> None:
    path = Path(text).expanduser()
    if path.is_file():
        inputs.sources.append(Source(path, Path(path.stem)))
        return
    if path.is_dir():
        # --out equal to the input folder is allowed (overwrites of inputs are refused elsewhere).
        files, skipped, subfolders = _scan_folder(path, recursive, None if exclude == path.resolve() else exclude)
        if not files:
            scope = "and all its sub-folders" if recursive else "top level only"
            found = f"; it holds {len(skipped)} non-image file(s)" if skipped else ""
            hint = f"; pass --recursive to search its {subfolders} sub-folder(s)" if subfolders else ""
            raise DataError(f"{path}: matched no image files (searched: {path} {scope}, for {_SUFFIXES}; "
                            f"hidden files and the --out folder skipped){found}{hint}")
        inputs.sources += [Source(p, p.relative_to(path).with_suffix("")) for p in _sorted(files, path)]
        inputs.skipped += _sorted(skipped, path)
        inputs.subfolders_ignored += subfolders
        return
    if _has_magic(text):
        pattern = os.path.expanduser(text)
        base = _glob_base(pattern)
        # ``**`` always means zero or more folders, as in glob.glob(..., recursive=True); --recursive is for folders.
        matched = [Path(p) for p in glob.glob(pattern, recursive=True)]
        matched = [p for p in matched if p.is_file() and not _inside(p, exclude)]
        files = [p for p in matched if is_image_file(p)]
        if not files:
            others = f"; it matched {len(matched)} non-image file(s)" if matched else ""
            searched = _glob_scope(pattern, base)
            raise DataError(f"{text}: the pattern matched no image files (searched: {searched}){others}")
        inputs.sources += [Source(p, _relative(p, base).with_suffix("")) for p in _sorted(files, base)]
        inputs.skipped += _sorted([p for p in matched if not is_image_file(p)], base)
        return
    raise DataError(f"{path}: no such image, folder or glob match")


def resolve_inputs(specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], recursive: bool = False,
                   exclude: Path | None = None) -> Inputs:
    """INPUT(s) -> sources in order; DataError naming the path when one holds nothing usable.

    ``recursive`` searches the sub-folders of a folder INPUT; in a glob ``**``
    matches zero or more folders whether or not it is set.

    ``exclude`` (the output folder) is never searched, so a second run with
    ``--out`` inside the input folder does not segment the first run's masks.
    """
    texts = [os.fspath(specs)] if isinstance(specs, (str, os.PathLike)) else [os.fspath(s) for s in specs]
    texts = [t for t in texts if t]
    if not texts:
        raise ConfigError("no INPUT given; pass an image, a folder, a glob pattern or --camera SOURCE")
    inputs = Inputs()
    excluded = exclude.resolve() if exclude is not None else None
    for text in texts:
        _one(text, recursive, excluded, inputs)
    inputs.single = len(texts) == 1 and Path(texts[0]).expanduser().is_file()
    inputs.sources, inputs.renamed = _dedupe(inputs.sources)
    return inputs
