"""What ``segedge predict INPUT...`` means: images, folders or glob patterns.

Each input keeps its path relative to where the search started, so outputs in
``--out`` mirror sub-folders and two ``a.jpg`` files in different folders
never overwrite each other's masks. Several INPUTs are accepted because a
shell expands an unquoted ``photos/*.jpg`` into many file names.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segedge.data.images import IMAGE_SUFFIXES, is_image_file
from segedge.errors import ConfigError, DataError

_MAGIC = set("*?[")


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
            found = f"; it holds {len(skipped)} non-image file(s)" if skipped else ""
            hint = "; pass --recursive to search sub-folders" if subfolders and not recursive else ""
            raise DataError(f"{path}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}){found}{hint}")
        inputs.sources += [Source(p, p.relative_to(path).with_suffix("")) for p in _sorted(files, path)]
        inputs.skipped += _sorted(skipped, path)
        inputs.subfolders_ignored += subfolders
        return
    if _has_magic(text):
        base = _glob_base(text)
        matched = [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=recursive)]
        matched = [p for p in matched if p.is_file() and not _inside(p, exclude)]
        files = [p for p in matched if is_image_file(p)]
        if not files:
            raise DataError(f"{text}: the pattern matched no image files ({len(matched)} file(s) matched)")
        inputs.sources += [Source(p, _relative(p, base).with_suffix("")) for p in _sorted(files, base)]
        inputs.skipped += _sorted([p for p in matched if not is_image_file(p)], base)
        return
    raise DataError(f"{path}: no such image, folder or glob match")


def resolve_inputs(specs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], recursive: bool = False,
                   exclude: Path | None = None) -> Inputs:
    """INPUT(s) -> sources in order; DataError naming the path when one holds nothing usable.

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
