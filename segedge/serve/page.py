"""The page's three files, shipped as package data and served by fixed name (never a path from a request)."""

from __future__ import annotations

import functools
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
         "style.css": "text/css; charset=utf-8"}


@functools.lru_cache(maxsize=len(FILES))
def asset(name: str) -> bytes:
    return resources.files("segedge.serve").joinpath("static", name).read_bytes()


def handler(name: str):
    async def serve_file(request: Request) -> Response:
        return Response(asset(name), media_type=FILES[name], headers={"Cache-Control": "no-cache"})
    return serve_file
