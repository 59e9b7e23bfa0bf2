"""The HTTP endpoints. No endpoint takes a path: the model is the one named at start, the page is package data.

Uploads: admitted first (``Admission``: 503 with Retry-After when full), then read with the byte
limit, then segmented in a worker thread, so a slow upload never holds the model and a burst
never grows memory. Every refusal is JSON ``{"error": "one line"}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from segedge.serve import info, segment
from segedge.serve.holder import ReloadBusy
from segedge.serve.openapi import document
from segedge.serve.state import MAX_STREAMS, ServeState
from segedge.serve.stats import CONTENT_TYPE_LATEST
from segedge.serve.uploads import UploadError, check_length, too_many_bytes
from segedge.util.errors import SegedgeError

RETRY_AFTER_S = 1
BOUNDARY = "segedgeframe"


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 / 405 as the same one-line JSON as every other refusal."""
    code = int(getattr(exc, "status_code", 500))
    return error(code, f"{request.method} {request.url.path}: {getattr(exc, 'detail', '') or 'failed'} "
                       "(GET /v1/openapi.json lists the endpoints)")


def state_of(request: Request) -> ServeState:
    return request.app.state.serve


async def read_body(request: Request, state: ServeState) -> bytes:
    """The body, refused (413) as soon as it passes the byte limit; a multipart form's one file part."""
    check_length(request.headers.get("content-length"), state.limits)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > state.limits.max_bytes:
            raise UploadError(413, too_many_bytes(None, state.limits))
        chunks.append(chunk)
    body = b"".join(chunks)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return body
    return await multipart_file(request, body, state)


async def multipart_file(request: Request, body: bytes, state: ServeState) -> bytes:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8,
                                                         max_part_size=state.limits.max_bytes)
    except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors are many; all are a bad request
        raise UploadError(400, f"malformed multipart body ({' '.join(str(exc).split())}); send one file part "
                               "named 'image'") from None
    parts = [form.get("image")] + [value for _, value in form.multi_items()]
    for part in parts:
        if part is not None and hasattr(part, "read"):
            data = await part.read()
            await form.close()
            return data
    await form.close()
    raise UploadError(400, "the multipart form has no file part: send the image as the field 'image'")


async def segment_image(request: Request) -> Response:
    state = state_of(request)
    fmt = segment.choose_format(request.query_params.get("format"), request.headers.get("accept"))
    if fmt is None:
        return error(400, f"format={request.query_params.get('format')!r}: choose one of {', '.join(segment.FORMATS)}")
    include = tuple(v for v in request.query_params.get("include", "").split(",") if v)
    if any(v not in segment.INCLUDES for v in include):
        return error(400, f"include={','.join(include)!r}: choose from {', '.join(segment.INCLUDES)}")
    if not state.admission.enter():
        return error(503, f"busy: {state.admission.capacity} uploads are already being segmented or waiting; "
                          f"retry in {RETRY_AFTER_S} s", {"Retry-After": str(RETRY_AFTER_S)})
    state.stats.inflight.inc()
    try:
        data = await read_body(request, state)
        with state.holder.use() as served:
            seg = served.segmenter

            def work() -> tuple:
                result = segment.run(seg, data, state.limits)
                return segment.encode(seg, result, fmt, include, state.alpha) + (result.timings,)

            body, media, timings = await anyio.to_thread.run_sync(work, limiter=request.app.state.limiter)
        for stage, seconds in timings.items():
            state.stats.observe("upload", stage, seconds)
        if isinstance(body, dict):
            return JSONResponse(body)
        return Response(body, media_type=media, headers={"Cache-Control": "no-store"})
    except UploadError as exc:
        return error(exc.status, exc.message)
    except ClientDisconnect:  # the client went away mid-upload: nobody reads an answer; count it, no traceback
        return error(400, "the client disconnected before the upload was complete")
    except SegedgeError as exc:
        return error(422, exc.message)
    except Exception as exc:  # noqa: BLE001 - a runtime's failure: one JSON line here, the traceback in the log
        traceback.print_exc(file=sys.stderr)
        return error(500, f"segmenting failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                          "the server's log has the traceback")
    finally:
        state.stats.inflight.dec()
        state.admission.leave()


async def model(request: Request) -> Response:
    with state_of(request).holder.use() as served:
        return JSONResponse(info.model_document(served))


async def healthz(request: Request) -> Response:
    body = info.health(state_of(request))
    return JSONResponse(body, status_code=200 if body["model_loaded"] else 503)


async def status(request: Request) -> Response:
    return JSONResponse(info.live_status(state_of(request)))


async def metrics(request: Request) -> Response:
    return Response(state_of(request).stats.exposition(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(document())


async def reload(request: Request) -> Response:
    state = state_of(request)
    try:
        answer = await anyio.to_thread.run_sync(state.holder.reload)
    except ReloadBusy:
        return error(409, "a reload is already running; wait for it and check GET /healthz")
    state.stats.reloads.labels("ok" if answer["ok"] else "failed").inc()
    if answer["ok"]:
        with state.holder.use() as served:
            state.stats.set_model(info.model_info(served))
        return JSONResponse(answer)
    return JSONResponse({"error": answer["error"], **answer}, status_code=422)


def no_camera() -> Response:
    return error(404, "no camera: start 'segedge serve' with --camera 0|picam|VIDEO; uploads work without one")


async def stream(request: Request) -> Response:
    state = state_of(request)
    feed = state.feed
    if feed is None:
        return no_camera()
    if state.streams >= MAX_STREAMS:
        return error(503, f"{MAX_STREAMS} viewers are already watching the stream; retry later",
                     {"Retry-After": "5"})

    async def frames():
        state.streams += 1
        last, pause = -1, 0.5 / max(feed.options.max_fps, 1.0)
        try:
            while not state.stopping.is_set():
                feed.watch()
                frame = feed.latest
                if frame is None or frame.seq == last:
                    await asyncio.sleep(pause)
                    continue
                last = frame.seq
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n\r\n"
                       ).encode() + frame.jpeg + b"\r\n"
        finally:
            state.streams -= 1

    return StreamingResponse(frames(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                             headers={"Cache-Control": "no-store"})


async def fresh_frame(feed, wait_s: float = 3.0):
    """The newest frame, waiting up to ``wait_s`` for one drawn after now when nobody was watching.

    A source that has not sent its first frame yet is waited for too, so a snapshot asked for
    as the camera opens gets that frame rather than a 503 (a busy 2-core board draws the first
    overlay well after the first frame is counted).
    """
    idle = not feed.watched
    feed.watch()
    frame = feed.latest
    if (idle or frame is None) and feed.state in ("starting", "streaming"):
        seen = frame.seq if frame is not None else -1
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and (feed.latest is None or feed.latest.seq == seen):
            await asyncio.sleep(0.02)
        frame = feed.latest
    return frame


async def snapshot(request: Request) -> Response:
    state = state_of(request)
    if state.feed is None:
        return no_camera()
    kind = request.path_params["kind"]
    if kind not in ("jpg", "png"):
        return error(404, f"/v1/snapshot.{kind}: ask for /v1/snapshot.jpg (overlay) or /v1/snapshot.png (mask)")
    wanted = request.query_params.get("frame")
    if wanted is not None:  # the other picture of a snapshot already taken
        frame = state.feed.drawn(int(wanted)) if wanted.isdigit() else None
        if frame is None:
            return error(404, f"frame={wanted}: not among the last frames drawn; take a new snapshot")
    else:
        frame = await fresh_frame(state.feed)
    if frame is None:
        return error(503, "no frame yet: the camera has not sent one (see GET /healthz)", {"Retry-After": "1"})
    name = f"segedge_frame_{frame.index:06d}"
    headers = {"X-Segedge-Frame": str(frame.seq), "Cache-Control": "no-store"}
    if kind == "jpg":
        return Response(frame.jpeg, media_type="image/jpeg",
                        headers={**headers, "Content-Disposition": f'inline; filename="{name}_overlay.jpg"'})
    with state.holder.use() as served:
        palette = served.segmenter.manifest.palette
    body = await anyio.to_thread.run_sync(segment.mask_png, frame.mask, palette)
    return Response(body, media_type="image/png",
                    headers={**headers, "Content-Disposition": f'inline; filename="{name}.png"'})
