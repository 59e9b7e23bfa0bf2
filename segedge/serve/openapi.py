"""The API's OpenAPI 3.1 description, written by hand (Starlette has no generator; the API is small)."""

from __future__ import annotations

from segedge import __version__

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "A bad upload or parameter", 401: "Missing or wrong bearer token", 404: "No camera",
            409: "A reload is already running", 413: "Over the byte or pixel limit", 415: "Not an image",
            422: "The model could not do it (reload: the old model keeps serving)",
            503: "Busy: retry after the Retry-After header's seconds"}
    return {str(code): _json(ERROR, text[code]) for code in codes}


def document() -> dict:
    image_body = {"content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "image": {"type": "string", "format": "binary"}}}}}, "required": True}
    segment_ok = {"description": "The mask (PNG), the overlay (JPEG) or the JSON summary", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Segmentation"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}
    obj = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "segedge serve", "version": __version__,
                 "description": "The bundle's proven model over HTTP. With --token, every path but /healthz needs "
                                "'Authorization: Bearer TOKEN'."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Segmentation": {"type": "object", "properties": {
                    "width": {"type": "integer"}, "height": {"type": "integer"}, "model": {"type": "string"},
                    "artifact": {"type": "string"}, "upsample": {"type": "string"},
                    "classes": {"type": "array", "items": {"type": "object", "properties": {
                        "index": {"type": "integer"}, "name": {"type": "string"}, "pixels": {"type": "integer"},
                        "share": {"type": "number"}}}},
                    "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
                    "mask_png_base64": {"type": "string"}, "overlay_jpeg_base64": {"type": "string"}}}}},
        "security": [{"bearer": []}],
        "paths": {
            "/v1/segment": {"post": {
                "summary": "Segment one image (raw body or multipart field 'image')",
                "parameters": [
                    {"name": "format", "in": "query", "schema": {"enum": ["json", "png", "overlay"]},
                     "description": "Default: from Accept (image/png: mask, image/jpeg: overlay), else json"},
                    {"name": "include", "in": "query", "schema": {"type": "string"},
                     "description": "json only: mask,overlay adds them base64-encoded"}],
                "requestBody": image_body,
                "responses": {"200": segment_ok, **_errors(400, 401, 413, 415, 422, 503)}}},
            "/v1/model": {"get": {"summary": "Manifest, embedded metadata, classes, palette, parity",
                                  "responses": {"200": _json(obj, "The model document"), **_errors(401)}}},
            "/v1/status": {"get": {"summary": "What the page shows: camera, stage times, model",
                                   "responses": {"200": _json(obj, "Live status"), **_errors(401)}}},
            "/v1/reload": {"post": {"summary": "Load the bundle again; swap only after its self-check passes",
                                    "responses": {"200": _json(obj, "Swapped in"), **_errors(401, 409, 422)}}},
            "/v1/stream.mjpg": {"get": {"summary": "The live overlay, MJPEG",
                                        "responses": {"200": {"description": "multipart/x-mixed-replace JPEGs"},
                                                      **_errors(401, 404, 503)}}},
            "/v1/snapshot.{kind}": {"get": {
                "summary": "The current frame: jpg (overlay) or png (mask)",
                "parameters": [{"name": "kind", "in": "path", "required": True, "schema": {"enum": ["jpg", "png"]}},
                               {"name": "frame", "in": "query", "schema": {"type": "integer"},
                                "description": "X-Segedge-Frame of an earlier snapshot: the other picture of it"}],
                "responses": {"200": {"description": "The picture"}, **_errors(401, 404, 503)}}},
            "/healthz": {"get": {"summary": "Process, model and camera state (no token needed)", "security": [],
                                 "responses": {"200": _json(obj, "Serving"), "503": _json(obj, "No model")}}},
            "/metrics": {"get": {"summary": "Prometheus text format",
                                 "responses": {"200": {"description": "Metrics"}, **_errors(401)}}},
            "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json(obj, "OpenAPI")}}},
        },
    }
