"""``segedge serve``: the bundle's proven model over HTTP, on a live page and to Prometheus.

Light like every command module (typer only): Starlette, uvicorn and the runtimes are imported in
the command body, after the options are checked and the extra is found, and nothing under it
imports TensorFlow, so it runs on a Pi with ``segedge[edge,serve]`` (plus ``camera`` for --camera).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from segedge.commands import err_console, user_errors
from segedge.contract.targets import parse_one_name
from segedge.util.errors import ConfigError, DataError, MissingExtraError

SERVE_MODULES = ("starlette", "uvicorn", "prometheus_client", "python_multipart")


def _note(message: str) -> None:
    err_console.print(escape(message), highlight=False, soft_wrap=True)


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def check_options(port: int, threads: int | None, copies: int | None, queue: int, max_upload_mb: float,
                  max_megapixels: float, stream_fps: float, alpha: float) -> None:
    """Every bad value is refused before the model loads."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0-65535, got {port}")
    for name, value in (("--threads", threads), ("--copies", copies)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if queue < 0:
        raise ConfigError(f"--queue must be 0 or more, got {queue}")
    for name, number in (("--max-upload-mb", max_upload_mb), ("--max-megapixels", max_megapixels),
                         ("--stream-fps", stream_fps)):
        if not number > 0:
            raise ConfigError(f"{name} must be more than 0, got {number}")
    if not 0.0 < alpha <= 1.0:
        raise ConfigError(f"--alpha must be in (0, 1], got {alpha}")


def check_camera(camera: str) -> None:
    """A camera missing now may be plugged in later (the feed retries); a video file that is not there is a typo."""
    from segedge.edge.camera import PICAM, cv2_module, is_live, open_picamera
    from segedge.util.optional import installed

    cv2_module()  # the camera extra (the pipeline converts every frame with OpenCV), before the model loads
    if camera.strip().lower() == PICAM and not installed("picamera2"):
        open_picamera()  # says how to get picamera2 (apt, not pip); a missing library never comes back by retrying
    if not is_live(camera) and not Path(camera).exists():
        raise DataError(f"{camera}: no such camera device or video file (a camera index looks like 0)")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@user_errors
def serve(
    model: Annotated[Path, typer.Argument(
        metavar="BUNDLE_OR_MODEL", help="Bundle folder (from 'segedge export') or a model file from one.",
        show_default=False)],
    camera: Annotated[str | None, typer.Option(
        metavar="SOURCE", help="Camera index (0), device (/dev/video0), 'picam' or a video file: shown live on "
                               "the page. Without it the page and API serve uploads only.")] = None,
    host: Annotated[str, typer.Option(
        metavar="ADDRESS", help="Address to listen on; 0.0.0.0 for every network (then pass --token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="N", help="TCP port.")] = 8000,
    artifact: Annotated[list[str] | None, typer.Option(
        "--format", metavar="NAME", show_default=False,
        help="The one artifact to serve (fp32, int8, onnx, onnx-int8, ...); default as in predict.")] = None,
    runtime: Annotated[str | None, typer.Option(help="tflite or onnx (default: from the file's extension).")] = None,
    threads: Annotated[int | None, typer.Option(
        "--threads", metavar="N", help="Inference thread count (default: all usable cores).")] = None,
    copies: Annotated[int | None, typer.Option(
        "--copies", metavar="N", show_default=False,
        help="Copies of the model sharing --threads: uploads and frames segmented at once [1].")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="SEGEDGE_SERVE_TOKEN", metavar="TOKEN", show_default=False,
        help="Every endpoint but /healthz then needs 'Authorization: Bearer TOKEN' (a browser opens "
             "/?token=TOKEN once). Prefer the variable: a command line shows in 'ps'.")] = None,
    upsample: Annotated[str | None, typer.Option(
        "--upsample", metavar="logits|mask", show_default=False,
        help="How masks reach the image's size; default: what the bundle was exported (and verified) with.")
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(metavar="MB", help="Largest upload accepted, in MB.")] = 20.0,
    max_megapixels: Annotated[float, typer.Option(
        metavar="MP", help="Largest image accepted, in megapixels, checked from the header before decoding.")] = 24.0,
    queue: Annotated[int, typer.Option(
        metavar="N", help="Uploads that may wait for the model; past that the answer is 503 with Retry-After.")] = 4,
    stream_fps: Annotated[float, typer.Option(
        metavar="FPS", help="Overlays drawn per second for the page at most (every frame is still segmented).")] = 15.0,
    pace: Annotated[bool, typer.Option(
        "--pace/--no-pace", help="Play a video file at its own frame rate (--no-pace: as fast as it segments).")
    ] = True,
    alpha: Annotated[float, typer.Option(help="Overlay colour opacity, 0-1.")] = 0.5,
    systemd_unit: Annotated[bool, typer.Option(
        "--systemd-unit", help="Print a systemd unit that runs this command at boot, and exit (docs/serve.md).")
    ] = False,
) -> None:
    """Serve the model over HTTP: a live page at /, POST /v1/segment, /healthz and /metrics; no TensorFlow."""
    artifact_name = parse_one_name(artifact)
    check_options(port, threads, copies, queue, max_upload_mb, max_megapixels, stream_fps, alpha)
    if systemd_unit:
        from segedge.serve.systemd import unit_text

        args = [arg for arg in sys.argv[sys.argv.index("serve") + 2:] if arg != "--systemd-unit"] \
            if "serve" in sys.argv else []
        args = _without_token(args)
        typer.echo(unit_text(args, model), nl=False)
        return
    from segedge.util.optional import missing_modules

    missing = missing_modules(SERVE_MODULES)
    if missing:
        raise MissingExtraError(", ".join(missing), "serve")
    if upsample is not None:
        from segedge.contract.upsample import check_upsample

        check_upsample(upsample)
    if camera is not None:
        check_camera(camera)
    _run(model, camera, host, port, artifact_name, runtime, threads, copies or 1, token, upsample,
         max_upload_mb, max_megapixels, queue, stream_fps, pace, alpha)


def _without_token(args: list[str]) -> list[str]:
    """The unit file is world-readable: the token goes in its EnvironmentFile, never on ExecStart."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--token":
            skip = True
        elif not arg.startswith("--token="):
            kept.append(arg)
    return kept


def _run(model: Path, camera: str | None, host: str, port: int, artifact: str | None, runtime: str | None,
         threads: int | None, copies: int, token: str | None, upsample: str | None, max_upload_mb: float,
         max_megapixels: float, queue: int, stream_fps: float, pace: bool, alpha: float) -> None:
    from segedge.serve.holder import LoadOptions, ModelHolder
    from segedge.serve.live import FeedOptions, LiveFeed
    from segedge.serve.memory import limit_arenas
    from segedge.serve.server import bind, exposed_without_token
    from segedge.serve.server import serve as run_server
    from segedge.serve.state import ServeState
    from segedge.serve.stats import Stats
    from segedge.serve.uploads import Limits

    limit_arenas()  # before any thread: flat memory over days of camera reconnections (segedge/serve/memory.py)
    sock = bind(host, port)  # a busy port fails before seconds of model loading
    try:
        holder = ModelHolder(LoadOptions(model, artifact, runtime, threads, copies, upsample))
        served = holder.start()
    except BaseException:
        sock.close()
        raise
    check = served.check
    _note(f"model: {served.segmenter.describe()}")
    if check.agreement is not None:
        _note(f"self-check: {check.images} reference image(s), {100 * check.agreement:.2f} % of pixels as the "
              f"bundle's Keras masks (bound {100 * (check.bound or 0):.2f} %)")
    else:
        _note(f"self-check: {check.note}")
    stats = Stats()
    state = ServeState(holder, stats, Limits(int(max_upload_mb * 1e6), int(max_megapixels * 1e6)),
                       workers=copies, queue=queue, token=token, alpha=alpha)
    if camera is not None:
        state.feed = LiveFeed(camera, holder, stats, FeedOptions(max_fps=stream_fps, alpha=alpha, pace=pace))
    if exposed_without_token(host, token):
        _warn(f"--host {host} without --token: anyone who can reach this machine can use the model and watch the "
              "camera; pass --token (or SEGEDGE_SERVE_TOKEN)")
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    _note(f"serving on http://{shown}:{bound}/ (camera: {camera or 'none; uploads only'}); stop with Ctrl-C or SIGTERM")
    run_server(state, sock)
