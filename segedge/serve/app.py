"""The Starlette application: routes, the bearer token, request counting, start-up and shutdown of the camera."""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from segedge.serve import api, page
from segedge.serve.info import model_info
from segedge.serve.state import ServeState

OPEN_PATHS = frozenset({"/healthz"})  # answered without the token: a load balancer or systemd probe has none
COOKIE = "segedge_token"
ENDPOINTS = frozenset({"/", "/static/app.js", "/static/style.css", "/healthz", "/metrics", "/v1/model", "/v1/status",
                       "/v1/segment", "/v1/reload", "/v1/stream.mjpg", "/v1/snapshot.jpg", "/v1/snapshot.png",
                       "/v1/openapi.json"})


class Guard:
    """Pure ASGI (streams are not buffered): counts every response by endpoint and status, and with a token
    refuses any path but /healthz unless ``Authorization: Bearer TOKEN`` (or the page's cookie) matches.

    A browser cannot put a header on an ``<img>`` stream, so ``/?token=TOKEN`` sets an HttpOnly,
    SameSite=Strict cookie and redirects to ``/`` (the token leaves the address bar).
    """

    def __init__(self, app, state: ServeState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        code = {"status": 500}

        async def counting(message) -> None:
            if message["type"] == "http.response.start":
                code["status"] = message["status"]
            await send(message)

        try:
            token = self.state.token
            if token is not None and path not in OPEN_PATHS:
                given = self._presented(scope)
                if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                    query = parse_qs(scope.get("query_string", b"").decode())
                    offered = (query.get("token") or [None])[0]
                    if path == "/" and offered is not None and hmac.compare_digest(offered.encode(), token.encode()):
                        await self._login(counting, token)
                    else:
                        await self._refuse(counting, given is not None)
                    return
            await self.app(scope, receive, counting)
        finally:
            self.state.stats.requests.labels(endpoint, str(code["status"])).inc()

    @staticmethod
    def _presented(scope) -> str | None:
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
        return cookie[COOKIE].value if COOKIE in cookie else None

    @staticmethod
    async def _refuse(send, wrong: bool) -> None:
        why = "the bearer token is wrong" if wrong else "this server needs a token"
        body = json.dumps({"error": f"{why}: send 'Authorization: Bearer TOKEN' (the --token serve was started "
                                    "with); a browser opens /?token=TOKEN once"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="segedge"'),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _login(send, token: str) -> None:
        cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", b"/"), (b"set-cookie", cookie.encode("latin-1")), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def build_app(state: ServeState) -> Guard:
    """The ASGI app for ``state``: the camera feed starts with the server and stops with it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with state.holder.use() as served:
            state.stats.set_model(model_info(served))
        if state.feed is not None:
            state.feed.start()
        try:
            yield
        finally:
            state.stopping.set()
            if state.feed is not None:
                state.feed.stop()

    routes = [
        Route("/", page.handler("index.html")),
        Route("/static/app.js", page.handler("app.js")),
        Route("/static/style.css", page.handler("style.css")),
        Route("/healthz", api.healthz),
        Route("/metrics", api.metrics),
        Route("/v1/openapi.json", api.openapi),
        Route("/v1/model", api.model),
        Route("/v1/status", api.status),
        Route("/v1/segment", api.segment_image, methods=["POST"]),
        Route("/v1/reload", api.reload, methods=["POST"]),
        Route("/v1/stream.mjpg", api.stream),
        Route("/v1/snapshot.{kind:str}", api.snapshot),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: api.http_error})
    app.state.serve = state
    app.state.limiter = CapacityLimiter(state.workers)
    return Guard(app, state)
