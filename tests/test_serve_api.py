"""``segedge serve`` over real HTTP on 127.0.0.1: every endpoint, every refused upload, the token.

Each server is the real command in a subprocess on a free port (``ServeProcess``), talked to with
``urllib``/``http.client``, so what is tested is what a client on the network gets. The bundle is
``micro_bundle`` (fp32: its export agreement is 100 %, so the self-check's bound is 97 %).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import videos
from PIL import Image

cv2 = pytest.importorskip("cv2")
pytest.importorskip("starlette", reason="segedge serve needs the serve extra: pip install 'segedge[serve]'")

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """``segedge serve BUNDLE ARGS --port P`` in a subprocess, up once /healthz answers."""

    def __init__(self, bundle: Path, *args: str, env: dict[str, str] | None = None, prelude: str = "") -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # read back through its own path (the child's writes keep their offset); deleted at stop()
        handle, name = tempfile.mkstemp(prefix=f"segedge-serve-{self.port}-", suffix=".log")
        self.stderr_path = Path(name)
        self._stderr = os.fdopen(handle, "w")
        self._stderr_text: str | None = None
        command = [sys.executable, "-c", prelude + "\nfrom segedge.cli import main; main()", "serve", str(bundle),
                   "--port", str(self.port), "--threads", "1", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                        env={**os.environ, **(env or {})})
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise AssertionError(f"serve exited {self.process.returncode}: {self.stderr()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"serve did not answer within {START_TIMEOUT_S} s: {self.stderr()}")

    def stderr(self) -> str:
        if self._stderr_text is not None:  # stopped: what it wrote, kept when the file was closed
            return self._stderr_text
        return self.stderr_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._stderr_text is None:
            self._stderr.close()
            self._stderr_text = self.stderr()
            self.stderr_path.unlink()


def call(base: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         method: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; an HTTP error status is an answer, not an exception."""
    request = urllib.request.Request(base + path, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def one_line_error(body: bytes) -> str:
    message = json.loads(body)["error"]
    assert isinstance(message, str) and message and "\n" not in message
    return message


def jpeg_bytes(size: tuple[int, int] = (80, 60), mode: str = "RGB", **save) -> bytes:
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:, : size[0] // 2] = (220, 30, 30)
    pixels[size[1] // 3 :, size[0] // 2 :] = (30, 30, 220)
    image = Image.fromarray(pixels).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **save)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_video(path: Path, frames: int = 20, size: tuple[int, int] = (96, 72)) -> Path:
    return videos.write_video(path, frames, size, step=3)


def mask_of(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "P"
    return np.asarray(image)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("serve_video") / "clip.avi")


@pytest.fixture(scope="module")
def server(micro_bundle, clip):
    """Camera (a video, not paced, so it ends and reconnects often) and small upload limits."""
    proc = ServeProcess(micro_bundle, "--format", "fp32", "--camera", str(clip), "--no-pace",
                        "--max-upload-mb", "0.2", "--max-megapixels", "0.05")
    yield proc
    proc.stop()


def test_segment_json_png_overlay_and_multipart_agree_with_predict(server, micro_bundle, tmp_path):
    from segedge.edge.predictor import load

    photo = jpeg_bytes()
    status, headers, body = call(server.base, "/v1/segment", photo)
    assert status == 200 and headers["content-type"] == "application/json", body
    answer = json.loads(body)
    assert (answer["width"], answer["height"]) == (80, 60)
    assert answer["artifact"] == "fp32"
    assert abs(sum(c["share"] for c in answer["classes"]) - 1.0) < 1e-4
    assert sum(c["pixels"] for c in answer["classes"]) == 80 * 60
    assert {"decode", "prepare", "inference", "mask", "encode", "total"} <= set(answer["timings_ms"])

    status, headers, png = call(server.base, "/v1/segment", photo, {"Accept": "image/png"})
    assert status == 200 and headers["content-type"] == "image/png"
    (tmp_path / "photo.jpg").write_bytes(photo)
    with load(micro_bundle, artifact="fp32", threads=1) as segmenter:
        expected = segmenter.predict(tmp_path / "photo.jpg")  # what segedge predict writes for the same file
    assert np.array_equal(mask_of(png), expected)
    counts = {c["index"]: c["pixels"] for c in answer["classes"]}
    assert counts == {int(i): int(n) for i, n in zip(*np.unique(expected, return_counts=True), strict=True)}

    boundary = "segedgetestboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    status, _, multipart_png = call(server.base, "/v1/segment?format=png", form,
                                    {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and np.array_equal(mask_of(multipart_png), expected)

    status, headers, jpeg = call(server.base, "/v1/segment?format=overlay", photo)
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg)).size == (80, 60)
    status, _, body = call(server.base, "/v1/segment?format=json&include=mask,overlay", photo)
    assert status == 200 and {"mask_png_base64", "overlay_jpeg_base64"} <= set(json.loads(body))


def exif_rotated_jpeg() -> bytes:
    stored = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (40, 1, 3)))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view: a 64x40 file shown 40x64
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels in a few dozen bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def test_awkward_but_valid_uploads_are_segmented_upright(server):
    status, _, body = call(server.base, "/v1/segment", exif_rotated_jpeg())
    assert status == 200, body
    assert (json.loads(body)["width"], json.loads(body)["height"]) == (40, 64)  # EXIF applied, as predict does
    status, _, body = call(server.base, "/v1/segment", jpeg_bytes(mode="CMYK"))
    assert status == 200 and json.loads(body)["width"] == 80, body
    sixteen = Image.fromarray(np.arange(50 * 70, dtype=np.uint16).reshape(50, 70) * 18)
    assert sixteen.mode == "I;16"
    status, _, body = call(server.base, "/v1/segment", png_bytes(sixteen))
    assert status == 200 and (json.loads(body)["width"], json.loads(body)["height"]) == (70, 50), body


@pytest.mark.parametrize(("name", "status", "words"), [
    ("empty", 400, "empty upload"),
    ("text", 415, "not an image"),
    ("truncated", 400, "truncated"),
    ("too many bytes", 413, "limit is 0.2 MB"),
    ("too many pixels", 413, "limit is 0.05 MP"),
    ("bomb", 413, "pixels"),
])
def test_bad_uploads_get_one_line_4xx_and_the_server_goes_on(server, name, status, words):
    photo = jpeg_bytes((200, 150))
    body = {"empty": b"", "text": b"hello, this is not a picture", "truncated": photo[: len(photo) // 2],
            "too many bytes": os.urandom(300_000), "too many pixels": jpeg_bytes((400, 300)),
            "bomb": bomb_png()}[name]
    got, _, answer = call(server.base, "/v1/segment", body, {"Content-Type": "application/octet-stream"})
    assert got == status, answer
    assert words in one_line_error(answer)
    assert call(server.base, "/v1/segment", jpeg_bytes())[0] == 200  # still serving


def test_an_upload_over_the_limit_without_content_length_is_cut_off(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("POST", "/v1/segment", body=iter([b"\xff" * 100_000] * 4), encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and "limit" in one_line_error(response.read())
    connection.close()


def test_a_client_that_leaves_mid_upload_costs_nothing(server):
    for _ in range(3):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.putrequest("POST", "/v1/segment")
        connection.putheader("Content-Length", "100000")
        connection.endheaders()
        connection.send(b"\xff\xd8" * 100)
        connection.close()
    assert call(server.base, "/v1/segment", jpeg_bytes())[0] == 200
    metrics = call(server.base, "/metrics")[2].decode()
    assert 'endpoint="/v1/segment",status="500"' not in metrics
    assert "Traceback" not in server.stderr()


def test_bad_parameters_and_unknown_paths_are_json(server):
    status, _, body = call(server.base, "/v1/segment?format=gif", jpeg_bytes())
    assert status == 400 and "json, png, overlay" in one_line_error(body)
    status, _, body = call(server.base, "/v1/segment?include=logits", jpeg_bytes())
    assert status == 400 and "mask, overlay" in one_line_error(body)
    status, _, body = call(server.base, "/v1/nothing-here")
    assert status == 404 and "openapi" in one_line_error(body)
    status, _, body = call(server.base, "/v1/segment")  # GET where only POST is
    assert status == 405
    status, _, body = call(server.base, "/v1/snapshot.gif")
    assert status == 404


def test_model_health_metrics_and_openapi(server, micro_bundle):
    from segedge.contract.manifest import load_manifest

    manifest = load_manifest(micro_bundle)
    status, _, body = call(server.base, "/v1/model")
    document = json.loads(body)
    assert status == 200
    assert document["classes"] == manifest.classes and document["palette"] == manifest.palette
    assert document["manifest"]["artifacts"]["fp32"]["sha256"] == manifest.artifacts["fp32"].sha256
    assert document["metadata"]["classes"] == manifest.classes  # embedded in the file
    assert document["parity"]["export_verification"]["agreement"] == manifest.artifacts["fp32"].verify["agreement"]
    assert document["parity"]["self_check"]["ok"] is True and document["parity"]["self_check"]["images"] == 2

    status, _, body = call(server.base, "/healthz")
    health = json.loads(body)
    assert status == 200 and health["model_loaded"] and health["pid"] == server.process.pid
    assert health["camera"]["source"].endswith("clip.avi")

    call(server.base, "/v1/segment", b"not an image")
    status, headers, text = call(server.base, "/metrics")
    metrics = text.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for needle in ("segedge_frames_total", "segedge_frames_dropped_total", 'segedge_stage_seconds_bucket{',
                   'stage="inference"', 'source="upload"', 'segedge_model_info{',
                   'segedge_requests_total{endpoint="/v1/segment",status="415"}', 'artifact="fp32"',
                   "segedge_camera_up"):
        assert needle in metrics, needle

    status, _, body = call(server.base, "/v1/openapi.json")
    paths = json.loads(body)["paths"]
    assert {"/v1/segment", "/v1/model", "/healthz", "/metrics", "/v1/reload", "/v1/stream.mjpg"} <= set(paths)


def test_camera_stream_snapshots_and_a_video_that_ends_reconnects(server):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        camera = json.loads(call(server.base, "/v1/status")[2])["camera"]
        if camera["sessions"] >= 2 and camera["frames"] > 20:
            break
        time.sleep(0.2)
    assert camera["sessions"] >= 2, camera  # the 20-frame video ended and was opened again after the back-off
    assert camera["frames"] > 20 and camera["shares"], camera
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/v1/stream.mjpg")
    response = connection.getresponse()
    assert response.status == 200 and "multipart/x-mixed-replace" in response.getheader("content-type")
    head = response.read(200)
    assert b"--segedgeframe\r\nContent-Type: image/jpeg" in head and b"\xff\xd8" in head
    connection.close()
    status, headers, jpeg = call(server.base, "/v1/snapshot.jpg")
    assert status == 200 and Image.open(io.BytesIO(jpeg)).size == (96, 72)
    frame = headers["x-segedge-frame"]
    status, headers, png = call(server.base, f"/v1/snapshot.png?frame={frame}")  # the same frame's mask
    assert status == 200 and mask_of(png).shape == (72, 96) and ".png" in headers["content-disposition"]
    assert headers["x-segedge-frame"] == frame
    status, _, body = call(server.base, "/v1/snapshot.png?frame=999999")
    assert status == 404 and "new snapshot" in one_line_error(body)


def test_the_page_and_its_files_are_served(server):
    status, headers, html = call(server.base, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"/static/app.js" in html and b"http://" not in html and b"https://" not in html  # no CDN
    for name, kind in (("app.js", "javascript"), ("style.css", "css")):
        status, headers, _ = call(server.base, f"/static/{name}")
        assert status == 200 and kind in headers["content-type"]
    assert call(server.base, "/static/../manifest.json")[0] == 404  # no request names a file
