"""``segedge predict``: masks and overlays from a bundle, with LiteRT or onnxruntime.

This module stays light (typer only); the runtime, numpy and OpenCV are
imported inside the command body, and nothing here or below it imports
TensorFlow, so the command works on a Pi with only ``segedge[edge]``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from segedge.commands import err_console, user_errors
from segedge.commands._vocab import renamed_list
from segedge.contract.targets import parse_one_name
from segedge.util.errors import EXIT_INTERRUPTED, ConfigError, DataError

if TYPE_CHECKING:
    from collections.abc import Callable

    from segedge.edge.predictor import Segmenter
    from segedge.edge.sources import Inputs

MAX_NAMED = 10  # file names listed in one warning before "and N more"


def _names(paths: list, limit: int = MAX_NAMED) -> str:
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _note(message: str) -> None:
    err_console.print(escape(message), highlight=False, soft_wrap=True)


def _check_options(input_: str | None, out: Path | None, camera: str | None, threads: int | None,
                   every: int | None, show: bool, max_frames: int | None, batch: int, alpha: float,
                   as_json: bool, copies: int | None = None) -> None:
    """Every bad combination is refused before a model is loaded (seconds on a Pi)."""
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    if copies is not None and copies < 1:
        raise ConfigError(f"--copies must be at least 1, got {copies}")
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    if every is not None and every < 1:
        raise ConfigError(f"--every must be at least 1, got {every}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be at least 1, got {max_frames}")
    if not 0.0 < alpha <= 1.0:
        raise ConfigError(f"--alpha must be in (0, 1], got {alpha}")
    if camera is not None and input_ is not None:
        raise ConfigError(f"give either INPUT ({input_}) or --camera ({camera}), not both")
    if camera is None:
        if input_ is None:
            raise ConfigError("nothing to predict: pass an image, a folder or a glob as INPUT, or --camera SOURCE")
        used = [name for name, value in (("--every", every), ("--max-frames", max_frames)) if value is not None]
        used += ["--show"] if show else []
        if used:
            raise ConfigError(f"{', '.join(used)} only apply with --camera")
        if out is None and not as_json:
            raise ConfigError("nothing would be written: pass --out DIR (and/or --json)")


def stream_copies(copies: int | None, threads: int | None, camera: str | None) -> int:
    """Copies of the model a run segments frames with (``--copies``, else this choice).

    A video file is a throughput job: one copy per thread, each on one core, segments the most frames
    a second (224 px int8 on 2 cores: 165 -> 199 fps, docs/design.md). A live camera keeps one copy
    on all the threads: a frame then waits the least, and the camera's own pace (often 30 fps) is the
    ceiling anyway; ``--copies`` trades that lag for frames per second. Photos keep one copy: there
    the reader and writer, not the model, set the pace.
    """
    if copies is not None:
        return copies
    from segedge.edge.camera import is_live
    from segedge.edge.predictor import default_threads

    if camera is None or is_live(camera):
        return 1
    return default_threads() if threads is None else threads


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


@user_errors
def predict(
    model: Annotated[Path, typer.Argument(
        metavar="BUNDLE_OR_MODEL", help="Bundle folder (from 'segedge export') or a model file from one "
                                       "(alone, it runs on the labels and pre-processing embedded in it).",
        show_default=False)],
    inputs: Annotated[list[str] | None, typer.Argument(
        metavar="INPUT", help="Images, folders, or a quoted glob like 'photos/**/*.jpg'.",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for <stem>.png masks and overlays: new, empty, or one an earlier predict "
                            "wrote (masks it wrote under the same names are replaced; no other file is).")] = None,
    artifact: Annotated[list[str] | None, typer.Option(
        "--format", metavar="NAME", show_default=False,
        help="The one artifact to run (fp32, int8, onnx, onnx-int8, ...). Default: the int8 model of the "
             "runtime (--runtime, else TFLite), else its fp32 model.")] = None,
    runtime: Annotated[str | None, typer.Option(help="tflite or onnx (default: from the file's extension).")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", metavar="N", help="Inference thread count (default: all usable cores).")] = None,
    copies: Annotated[int | None, typer.Option(
        "--copies", metavar="N", show_default=False,
        help="Copies of the model segmenting frames at once, sharing --threads. Default: one per thread "
             "for a video file (most frames a second), one for a live camera and for photos (least lag).")
    ] = None,
    overlay: Annotated[bool, typer.Option("--overlay/--no-overlay",
                                          help="Also write <stem>_overlay.jpg with a legend.")] = True,
    alpha: Annotated[float, typer.Option(help="Overlay colour opacity, 0-1.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print per-image class pixel fractions as JSON "
                                                         "(JSON Lines per saved frame with --camera).")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r",
                                            help="Search sub-folders; outputs mirror them.")] = False,
    batch: Annotated[int, typer.Option(help="Images per inference call (batch-1 models are looped).")] = 1,
    camera: Annotated[str | None, typer.Option(
        help="Camera index (0), device (/dev/video0) or a video file, read with OpenCV; 'picam' for the "
             "Raspberry Pi camera through picamera2.")] = None,
    every: Annotated[int | None, typer.Option(help="With --camera: save every Nth frame to --out [1].")] = None,
    show: Annotated[bool, typer.Option("--show", help="With --camera: show overlays in a window (needs a display).")
                    ] = False,
    max_frames: Annotated[int | None, typer.Option(help="With --camera: stop after N frames.")] = None,
    upsample: Annotated[str | None, typer.Option(
        "--upsample", metavar="logits|mask", show_default=False,
        help="How masks reach the image's size: bilinear on the logits then argmax, or nearest on the "
             "model-size mask. Default: what the bundle was exported (and verified) with.")] = None,
    old_artifact: Annotated[list[str] | None, typer.Option("--artifact", hidden=True)] = None,
) -> None:
    """Segment images, a folder or camera frames with an exported bundle; no TensorFlow needed."""
    artifact = parse_one_name(renamed_list(artifact, old_artifact, "--format", "--artifact"))
    input_ = " ".join(inputs) if inputs else None
    _check_options(input_, out, camera, threads, every, show, max_frames, batch, alpha, as_json, copies)
    if upsample is not None:
        from segedge.contract.upsample import check_upsample

        check_upsample(upsample)
    from segedge.edge.predictor import load
    from segedge.util import outputs

    target = outputs.claim(out, "predictions", reuse=True) if out is not None else None
    if camera is not None:
        from segedge.edge.camera import CameraOptions, open_source, run_camera

        capture = open_source(camera)  # a missing extra or a bad source fails before the model loads
        options = CameraOptions(out=out, every=every or 1, show=show, max_frames=max_frames, overlay=overlay,
                                alpha=alpha, json_lines=as_json)
        try:
            if target is not None:
                from segedge.edge.runner import FRAME_FILE, check_frames_kept

                check_frames_kept(target)
            with load(model, runtime=runtime, threads=threads, artifact=artifact, upsample=upsample, spin=False,
                      copies=stream_copies(copies, threads, camera)) as segmenter:  # spin: others need cores
                _note(f"model: {segmenter.describe()}")
                # camera frames: record only the frame files that appear (a user file never does)
                with (outputs.writing(target, only=FRAME_FILE.fullmatch) if target is not None
                      else contextlib.nullcontext()):
                    run_camera(segmenter, capture, camera, options, stderr=sys.stderr, stdout=sys.stdout)
        finally:
            capture.release()
        return
    from segedge.edge.runner import check_kept, check_no_overwrite
    from segedge.edge.sources import resolve_inputs

    found = resolve_inputs(inputs or [], recursive=recursive, exclude=out)  # bad paths fail before the model loads
    writing: contextlib.AbstractContextManager = contextlib.nullcontext()
    if out is not None and target is not None:
        check_no_overwrite(found.sources, out, overlay)
        check_kept(found.sources, target, overlay)
        writing = outputs.recording(target)  # each file is recorded in the marker once it is written
    with load(model, runtime=runtime, threads=threads, artifact=artifact, upsample=upsample,
              spin=len(found.sources) < 2,  # several photos run as a pipeline: no idle spinning
              copies=stream_copies(copies, threads, None)) as segmenter:
        _note(f"model: {segmenter.describe()}")
        try:
            with writing as recorder:
                _predict_files(segmenter, found, out, overlay, alpha, as_json, batch,
                               recorder.add if recorder is not None else None)
        except KeyboardInterrupt:
            # Each mask is written whole (temp file + rename), so what is there is complete; say so, not "discarded".
            kept = f"the masks finished before it are kept in {out}" if out is not None else "nothing was written"
            err_console.print(f"interrupted; {escape(kept)} (none is half-written)", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


def _predict_files(segmenter: Segmenter, inputs: Inputs, out: Path | None, overlay: bool, alpha: float, as_json: bool,
                   batch: int, record: Callable[[Path], None] | None = None) -> None:
    from segedge.edge.runner import predict_files

    if inputs.skipped:
        _warn(f"skipped {len(inputs.skipped)} non-image file(s): {_names(inputs.skipped)}")
    if inputs.subfolders_ignored:
        _warn(f"{inputs.subfolders_ignored} sub-folder(s) not searched; pass --recursive to include them")
    if inputs.renamed:
        _warn("images that share a name get distinct output names: "
              + _names([f"{s.path.name} -> {s.stem.name}.png" for s in inputs.renamed]))
    result = predict_files(segmenter, inputs.sources, out, overlay=overlay, batch=batch, alpha=alpha,
                           single=inputs.single, record=record)
    for _path, message in result.failed:
        _warn(f"skipped unreadable image: {message}")
    if as_json:
        typer.echo(json.dumps({
            "model": str(segmenter.path), "artifact": segmenter.artifact,
            "images": [item.to_json() for item in result.images],
            "failed": [{"input": str(path), "error": message} for path, message in result.failed],
            "skipped": [str(path) for path in inputs.skipped],
        }, indent=2))
    overlays = sum(1 for item in result.images if item.overlay_path)
    if out is not None:
        written = f"wrote {len(result.images)} mask(s)" + (f" and {overlays} overlay(s)" if overlays else "")
        typer.echo(f"{written} to {out}", err=as_json)
    if result.failed:
        raise DataError(
            f"{len(result.failed)} of {len(inputs.sources)} image(s) could not be read: "
            f"{_names([path for path, _ in result.failed])}"
        )

