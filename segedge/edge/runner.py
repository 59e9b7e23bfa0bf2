"""Predict over a list of image files: read, batch, segment, write masks and overlays.

A folder of photos from the field always holds a few bad files; in a folder
run one unreadable image is recorded and skipped so the other thousand still
get masks, and the caller turns the failures into a non-zero exit at the end.
A single named image that cannot be read is an error straight away.
"""

from __future__ import annotations

import queue
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segedge.data.images import read_upright
from segedge.edge.pipeline import POLL_SECONDS, ListSource, Pipeline, StreamOptions, lower_priority
from segedge.edge.postprocess import mask_counts, save_image, save_mask
from segedge.edge.predictor import Segmenter, batched
from segedge.edge.sources import Source
from segedge.util import outputs
from segedge.util.errors import ConfigError, DataError, OutputError
from segedge.util.progress import track


@dataclass
class ImageResult:
    source: Source
    size: tuple[int, int]          # (width, height) of the original image
    fractions: dict[str, float]    # class name -> fraction of pixels
    mask: np.ndarray | None = None  # kept only when asked (memory stays flat over a long folder)
    mask_path: Path | None = None
    overlay_path: Path | None = None

    def to_json(self) -> dict:
        return {
            "input": str(self.source.path),
            "mask": str(self.mask_path) if self.mask_path else None,
            "overlay": str(self.overlay_path) if self.overlay_path else None,
            "width": self.size[0],
            "height": self.size[1],
            "classes": self.fractions,
        }


@dataclass
class RunResult:
    images: list[ImageResult] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def check_no_overwrite(sources: Sequence[Source], out: Path, overlay: bool) -> None:
    """``--out`` pointing at the input folder must not replace ``photo.png`` with its mask."""
    inputs = {source.path.resolve() for source in sources}
    for source in sources:
        targets = [source.mask_path(out)] + ([source.overlay_path(out)] if overlay else [])
        for target in targets:
            if target.resolve() in inputs:
                raise ConfigError(
                    f"--out {out}: writing {target.name} would overwrite the input image {target}; "
                    "choose another output folder"
                )


def output_names(sources: Sequence[Source], out: Path, overlay: bool) -> list[Path]:
    """Every file predict writes under ``out`` for ``sources``."""
    return [target for source in sources
            for target in [source.mask_path(out)] + ([source.overlay_path(out)] if overlay else [])]


def check_kept(sources: Sequence[Source], target: outputs.Claim, overlay: bool) -> None:
    """Predicting into an earlier predictions folder must not write over a file there that segedge did not
    write (its own earlier masks of the same name are replaced: the marker lists each file it wrote, so a
    photo of the user's in a sub-folder beside segedge's masks is never one of them)."""
    for path in output_names(sources, target.path, overlay):
        if (path.exists() or path.is_symlink()) and not target.owns(path):
            raise OutputError(f"{path}: not written by segedge, and predict would replace it; move it away, "
                              "or choose a new or empty --out")


QUEUE_SIZE = 2  # photos waiting between two stages: enough to overlap them, memory stays flat

FRAME_FILE = re.compile(r"frame_\d{6}(\.png|_overlay\.jpg)")  # what camera mode writes (segedge.edge.camera)


def check_frames_kept(target: outputs.Claim) -> None:
    """Camera mode into an earlier predictions folder: no file segedge did not write may be a frame's name."""
    taken = sorted(e.name for e in target.foreign() if FRAME_FILE.fullmatch(e.name))
    if taken:
        raise OutputError(f"{target.path / taken[0]}: not written by segedge, and a saved camera frame would "
                          "replace it; move it away, or choose a new or empty --out")


def _read_or_error(source: Source) -> Image.Image | DataError:
    """The image upright as a viewer shows it (EXIF orientation applied: phone photos), or why it is unreadable."""
    try:
        return read_upright(source.path)  # the same reader as Segmenter.predict(path)
    except Image.DecompressionBombError as exc:
        return DataError(f"{source.path}: image is too large to decode safely ({exc})")
    except DataError as exc:
        return exc


def _read(source: Source, single: bool, failed: list[tuple[Path, str]]) -> Image.Image | None:
    """The upright image, or None after recording why it is unreadable (raised for a single named image)."""
    image = _read_or_error(source)
    if not isinstance(image, DataError):
        return image
    if single:
        raise image
    failed.append((source.path, image.message))
    return None


def predict_files(segmenter: Segmenter, sources: Sequence[Source], out: Path | None, overlay: bool = True,
                  batch: int = 1, alpha: float = 0.5, single: bool = False, keep_masks: bool = False,
                  pipelined: bool = True, record: Callable[[Path], None] | None = None) -> RunResult:
    """Segment every source; write ``<stem>.png`` (+ ``<stem>_overlay.jpg``) under ``out`` if given.

    ``record`` is called with each file once it is written whole (``outputs.Recorder.add``), so the
    predictions marker owns exactly what was written, never a name that was only planned.

    Several photos at batch 1 go through ``Pipeline`` (reading the next photo, segmenting this one
    and writing the last overlap); one photo, ``--batch`` above 1, or ``pipelined=False`` run one
    after another. Both give the same bytes: the same three steps run, only in other threads.
    """
    result = RunResult()
    if pipelined and batch == 1 and len(sources) > 1 and not single:
        _predict_pipelined(segmenter, sources, out, overlay, alpha, keep_masks, result, record)
        return result
    for chunk in batched(track(sources, "predicting", total=len(sources)), batch):
        loaded = [(source, image) for source in chunk
                  if (image := _read(source, single, result.failed)) is not None]
        if not loaded:
            continue
        masks = segmenter.predict_batch([image for _, image in loaded])
        for (source, image), mask in zip(loaded, masks, strict=True):
            result.images.append(_write(segmenter, source, image, mask, out, overlay, alpha, keep_masks, record))
    return result


def _write(segmenter: Segmenter, source: Source, image: Image.Image, mask: np.ndarray, out: Path | None,
           overlay: bool, alpha: float, keep_masks: bool,
           record: Callable[[Path], None] | None = None) -> ImageResult:
    """One photo's mask PNG (and overlay) under ``out``, and its JSON entry; each file is recorded once
    it is in place.

    The mask PNG is written in a second thread while the overlay is tinted and encoded (PIL's zlib and
    JPEG code run without the GIL): a 12 MP photo's two files cost the slower of the two, not their sum.
    The overlay is drawn on ``image`` itself, read here and not needed after, not on a 36 MB copy."""
    counts = mask_counts(mask)
    item = ImageResult(source, image.size, segmenter.fractions(mask, counts), mask if keep_masks else None)
    if out is None:
        return item
    palette = segmenter.manifest.palette
    if not overlay:
        item.mask_path = save_mask(source.mask_path(out), mask, palette)
        if record is not None:
            record(item.mask_path)
        return item
    with ThreadPoolExecutor(1, thread_name_prefix=MASK_THREAD) as pool:
        saved = pool.submit(save_mask, source.mask_path(out), mask, palette)
        try:
            shown = segmenter.overlay(image, mask, alpha, counts=counts, in_place=True)
            item.overlay_path = save_image(source.overlay_path(out), shown)
        finally:
            try:
                item.mask_path = saved.result()  # its error, if any, is raised here
            finally:  # whatever failed, a file written is a file recorded
                for path in (item.mask_path, item.overlay_path):
                    if path is not None and record is not None:
                        record(path)
    return item


MASK_THREAD = "segedge-mask-png"
WRITER_THREAD = "segedge-writer"
_WRITER_ENDED = object()  # the writer's last word: the stream ended, or a stop or an error ended it


def _finished(done: queue.Queue) -> Iterator[None]:
    """One item per photo the writer has finished, until it says it ended."""
    while True:
        try:
            item = done.get(timeout=POLL_SECONDS)  # a timeout keeps Ctrl-C prompt on every platform
        except queue.Empty:
            continue
        if item is _WRITER_ENDED:
            return
        yield None


def _predict_pipelined(segmenter: Segmenter, sources: Sequence[Source], out: Path | None, overlay: bool,
                       alpha: float, keep_masks: bool, result: RunResult,
                       record: Callable[[Path], None] | None = None) -> None:
    """Reader thread (decode + EXIF, resize: ``Segmenter.prepare``) -> inference thread
    (``Segmenter.infer``) -> writer thread (full-size mask, colour, files), in input order, while this
    thread shows progress. The reader and the writer lower their priority (``lower_priority``): on a
    machine with as many cores as threads minus one the model's thread, the slowest stage, then runs
    first and the others fill the gaps (224 px, 2 cores: 1.29x -> 1.20x of the bare invoke per photo).
    An unreadable photo skips inference and becomes its failure line in the writer; an error or Ctrl-C
    stops all three threads, then propagates here (the photo being written is finished first)."""

    def load(source: Source) -> tuple[tuple[Source, Image.Image | DataError], Any]:
        image = _read_or_error(source)
        return (source, image), None if isinstance(image, DataError) else segmenter.prepare(image)

    pipeline = Pipeline(segmenter, ListSource(sources), None,
                        StreamOptions(queue_size=QUEUE_SIZE, yield_to_model=True), drop=False, load=load)
    done: queue.Queue = queue.Queue()

    def write_all() -> None:
        try:
            lower_priority()
            for _index, (source, image), inferred in pipeline.results_in_order():
                if isinstance(image, DataError):
                    result.failed.append((source.path, image.message))
                else:
                    mask = pipeline.stages.mask(inferred)
                    result.images.append(_write(segmenter, source, image, mask, out, overlay, alpha, keep_masks,
                                                record))
                done.put(None)
        finally:
            done.put(_WRITER_ENDED)

    writer = pipeline.guarded(write_all, WRITER_THREAD)
    pipeline.start()
    writer.start()
    try:
        for _ in track(_finished(done), "predicting", total=len(sources)):
            pass
    finally:
        pipeline.close()
        writer.join()
    if pipeline.error is not None:
        raise pipeline.error
