"""``segedge serve`` as a service: the token, 503 under overload, reloads that fail safe, SIGTERM, the unit file."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from test_edge_packaging import installed_closure, resolve_extras
from test_no_tensorflow import BLOCKER
from test_serve_api import ServeProcess, call, jpeg_bytes, one_line_error
from typer.testing import CliRunner

from segedge.cli import app

TOKEN = "s3cret-token"


@pytest.fixture
def bundle_copy(micro_bundle, tmp_path) -> Path:
    """A private copy a test may break and mend (micro_bundle is shared)."""
    return Path(shutil.copytree(micro_bundle, tmp_path / "bundle"))


def test_token_guards_everything_but_healthz(micro_bundle):
    server = ServeProcess(micro_bundle, "--format", "fp32", "--host", "127.0.0.1", env={"SEGEDGE_SERVE_TOKEN": TOKEN})
    try:
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert call(server.base, "/healthz")[0] == 200
        for path, data in (("/", None), ("/v1/model", None), ("/metrics", None), ("/v1/status", None),
                           ("/v1/openapi.json", None), ("/v1/segment", jpeg_bytes()), ("/v1/reload", b"")):
            status, headers, body = call(server.base, path, data)
            assert status == 401 and "Bearer" in headers["www-authenticate"], path
            assert "needs a token" in one_line_error(body)
            status, _, body = call(server.base, path, data, {"Authorization": "Bearer wrong"})
            assert status == 401 and "wrong" in one_line_error(body), path
        assert call(server.base, "/v1/model", None, good)[0] == 200
        assert call(server.base, "/v1/segment", jpeg_bytes(), good)[0] == 200
        # a browser: /?token= once sets an HttpOnly cookie and drops the token from the address
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", f"/?token={TOKEN}")
        response = connection.getresponse()
        assert response.status == 303 and response.getheader("location") == "/"
        cookie = response.getheader("set-cookie")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        response.read()
        connection.close()
        assert call(server.base, "/", None, {"Cookie": cookie.split(";")[0]})[0] == 200
        assert call(server.base, "/?token=wrong")[0] == 401
        metrics = call(server.base, "/metrics", None, good)[2].decode()
        assert 'segedge_requests_total{endpoint="/v1/model",status="401"}' in metrics
    finally:
        server.stop()


def test_a_full_queue_answers_503_with_retry_after(micro_bundle):
    server = ServeProcess(micro_bundle, "--format", "fp32", "--queue", "0", "--copies", "1")
    try:
        photo = jpeg_bytes()
        # One upload admitted and stalled half-sent: it holds the only place (1 copy, queue 0).
        slow = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        slow.putrequest("POST", "/v1/segment")
        slow.putheader("Content-Length", str(len(photo)))
        slow.endheaders()
        slow.send(photo[:100])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, headers, body = call(server.base, "/v1/segment", photo)
            if status == 503:
                break
            time.sleep(0.05)
        assert status == 503 and headers["retry-after"] == "1", body
        assert "busy" in one_line_error(body)
        slow.send(photo[100:])
        assert slow.getresponse().status == 200
        slow.close()
        assert call(server.base, "/v1/segment", photo)[0] == 200  # the place is free again
        metrics = call(server.base, "/metrics")[2].decode()
        assert 'segedge_requests_total{endpoint="/v1/segment",status="503"}' in metrics
    finally:
        server.stop()


def replace(path: Path, data: bytes) -> None:
    """A new file renamed over the old, as 'segedge export' replaces a bundle: the model being served keeps its
    own (mapped) file; writing into it in place would change the bytes under the running interpreter."""
    temp = path.with_name(path.name + ".new")
    temp.write_bytes(data)
    temp.replace(path)


def break_reference(bundle: Path) -> None:
    """Reference masks that no model matches: loading succeeds, the self-check does not."""
    from segedge.contract.reference import Reference

    ref = Reference.load(bundle / "reference.npz")
    ref.keras_full = [((mask.astype(np.int64) + 1) % 21).astype(np.uint8) for mask in ref.keras_full]
    ref.save(bundle / "reference.new.npz")
    (bundle / "reference.new.npz").replace(bundle / "reference.npz")


def generation(server: ServeProcess) -> int:
    return json.loads(call(server.base, "/v1/model")[2])["model"]["generation"]


def test_reload_swaps_only_a_bundle_that_loads_and_passes_its_self_check(bundle_copy, micro_bundle):
    server = ServeProcess(bundle_copy, "--format", "fp32")
    try:
        photo = jpeg_bytes()
        before = call(server.base, "/v1/segment?format=png", photo)[2]
        status, _, body = call(server.base, "/v1/reload", b"")
        assert status == 200 and json.loads(body)["ok"] and generation(server) == 2

        model = bundle_copy / "model_fp32.tflite"
        replace(model, model.read_bytes()[:1000])  # a damaged copy
        status, _, body = call(server.base, "/v1/reload", b"")
        assert status == 422 and "sha256" in one_line_error(body), body
        assert json.loads(body)["still_serving"].startswith("model_fp32.tflite")
        assert call(server.base, "/v1/segment?format=png", photo)[2] == before  # the old model answers
        health = json.loads(call(server.base, "/healthz")[2])
        assert health["last_reload"]["ok"] is False and "sha256" in health["last_reload"]["error"]

        replace(model, (micro_bundle / "model_fp32.tflite").read_bytes())
        break_reference(bundle_copy)
        status, _, body = call(server.base, "/v1/reload", b"")
        assert status == 422 and "self-check failed" in one_line_error(body), body
        assert generation(server) == 2

        replace(bundle_copy / "reference.npz", (micro_bundle / "reference.npz").read_bytes())
        server.process.send_signal(signal.SIGHUP)  # systemd's ExecReload
        deadline = time.monotonic() + 20
        while generation(server) != 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert generation(server) == 3
        assert call(server.base, "/v1/segment?format=png", photo)[2] == before
        metrics = call(server.base, "/metrics")[2].decode()
        assert 'segedge_reloads_total{result="failed"} 2.0' in metrics
        assert 'segedge_reloads_total{result="ok"} 2.0' in metrics
    finally:
        server.stop()
    assert "reloaded: model_fp32.tflite" in server.stderr()


def test_sigterm_stops_within_two_seconds_with_a_viewer_and_an_upload_around(micro_bundle, tmp_path):
    from test_serve_api import write_video

    clip = write_video(tmp_path / "clip.avi")
    server = ServeProcess(micro_bundle, "--format", "fp32", "--camera", str(clip))
    try:
        viewer = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        viewer.request("GET", "/v1/stream.mjpg")
        assert viewer.getresponse().status == 200
        assert call(server.base, "/v1/segment", jpeg_bytes())[0] == 200
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(10)
        took = time.monotonic() - start
    finally:
        server.stop()
    assert code == 0 and took < 2.0, (code, took)
    assert "stopped (SIGTERM)" in server.stderr()


def test_without_a_camera_uploads_still_work_and_exposed_host_warns(micro_bundle):
    server = ServeProcess(micro_bundle, "--format", "fp32", "--host", "0.0.0.0")
    try:
        assert "--host 0.0.0.0 without --token" in server.stderr()
        assert call(server.base, "/")[0] == 200
        status, _, body = call(server.base, "/v1/stream.mjpg")
        assert status == 404 and "--camera" in one_line_error(body)
        assert call(server.base, "/v1/snapshot.jpg")[0] == 404
        assert call(server.base, "/v1/segment", jpeg_bytes())[0] == 200
        assert json.loads(call(server.base, "/healthz")[2])["camera"] is None
    finally:
        server.stop()


def test_systemd_unit_runs_this_command_and_keeps_the_token_out(micro_bundle, monkeypatch):
    args = ["serve", str(micro_bundle), "--camera", "0", "--port", "8080", "--token", TOKEN, "--systemd-unit"]
    monkeypatch.setattr(sys, "argv", ["segedge", *args])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    unit = result.stdout
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert f"serve {micro_bundle.resolve()} --camera 0 --port 8080" in exec_start
    assert TOKEN not in unit and "EnvironmentFile=-/etc/segedge/serve.env" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "WantedBy=multi-user.target" in unit


@pytest.mark.parametrize(("args", "words"), [
    (["--port", "70000"], "--port must be 0-65535"),
    (["--queue", "-1"], "--queue must be 0 or more"),
    (["--max-upload-mb", "0"], "--max-upload-mb must be more than 0"),
    (["--camera", "no_such_clip.avi"], "no such camera device or video file"),
])
def test_bad_options_are_one_line_before_the_model_loads(micro_bundle, args, words):
    result = CliRunner().invoke(app, ["serve", str(micro_bundle), *args])
    assert result.exit_code in (2, 3) and words in result.output, result.output


def test_picam_without_picamera2_fails_at_start_not_in_a_retry_loop(micro_bundle, monkeypatch):
    import segedge.util.optional

    real = segedge.util.optional.installed
    monkeypatch.setattr(segedge.util.optional, "installed", lambda module: module != "picamera2" and real(module))
    monkeypatch.setitem(sys.modules, "picamera2", None)  # importing it fails, as where apt never installed it
    result = CliRunner().invoke(app, ["serve", str(micro_bundle), "--camera", "picam"])
    assert result.exit_code == 6 and "python3-picamera2" in result.output, result.output


def test_a_busy_port_is_one_line(micro_bundle):
    server = ServeProcess(micro_bundle, "--format", "fp32")
    try:
        result = CliRunner().invoke(app, ["serve", str(micro_bundle), "--port", str(server.port)])
        assert result.exit_code == 2 and "pass another --port" in result.output, result.output
    finally:
        server.stop()


def test_serve_imports_no_tensorflow():
    code = BLOCKER + textwrap.dedent("""
        import importlib, pkgutil, sys
        import segedge.serve
        for module in pkgutil.walk_packages(segedge.serve.__path__, "segedge.serve."):
            importlib.import_module(module.name)
        import segedge.commands.serve
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "tf2onnx", "tf_keras"})
        assert not heavy, heavy
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_a_server_with_tensorflow_unimportable_serves_the_camera_and_uploads(micro_bundle, tmp_path):
    """As on a Pi: TensorFlow, Keras and tf2onnx cannot be imported at all, and every path still works."""
    from test_serve_api import write_video

    clip = write_video(tmp_path / "clip.avi")
    server = ServeProcess(micro_bundle, "--camera", str(clip), "--no-pace", prelude=BLOCKER)
    try:
        assert call(server.base, "/v1/segment?format=png", jpeg_bytes())[0] == 200
        for path in ("/", "/v1/model", "/metrics", "/v1/openapi.json"):
            assert call(server.base, path)[0] == 200, path
        deadline = time.monotonic() + 20
        while json.loads(call(server.base, "/v1/status")[2])["camera"]["frames"] == 0:
            assert time.monotonic() < deadline, "no camera frame"
            time.sleep(0.1)
        assert call(server.base, "/v1/snapshot.jpg")[0] == 200
        assert call(server.base, "/v1/reload", b"")[0] == 200
    finally:
        server.stop()
    assert "blocked in this test" not in server.stderr()


def test_serve_extra_pulls_no_tensorflow():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    names = resolve_extras(project, ["edge", "serve"])
    assert {"starlette", "uvicorn", "prometheus-client", "python-multipart"} <= names
    closure = installed_closure(names)
    assert not {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx"} & closure, closure


def test_more_refusals_stream_limit_and_accept_jpeg(micro_bundle, tmp_path):
    from test_serve_api import write_video

    from segedge.serve.state import MAX_STREAMS

    clip = write_video(tmp_path / "clip.avi")
    server = ServeProcess(micro_bundle, "--format", "fp32", "--camera", str(clip))
    viewers = []
    try:
        boundary = "b0undary"
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{boundary}--\r\n"
                ).encode()
        status, _, body = call(server.base, "/v1/segment", form,
                               {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert status == 400 and "field 'image'" in one_line_error(body)
        status, headers, _ = call(server.base, "/v1/segment", jpeg_bytes(), {"Accept": "image/jpeg"})
        assert status == 200 and headers["content-type"] == "image/jpeg"  # the overlay
        for _ in range(MAX_STREAMS):
            viewer = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            viewer.request("GET", "/v1/stream.mjpg")
            assert viewer.getresponse().status == 200
            viewers.append(viewer)
        status, headers, body = call(server.base, "/v1/stream.mjpg")
        assert status == 503 and "viewers" in one_line_error(body) and headers["retry-after"]
    finally:
        for viewer in viewers:
            viewer.close()
        server.stop()


def test_a_bare_model_file_is_served_from_its_embedded_metadata(micro_bundle, tmp_path):
    model = tmp_path / "model_fp32.tflite"
    shutil.copy(micro_bundle / "model_fp32.tflite", model)
    server = ServeProcess(model)
    try:
        document = json.loads(call(server.base, "/v1/model")[2])
        check = document["parity"]["self_check"]
        assert check["ok"] and check["agreement"] is None and "no reference set" in check["note"]
        assert call(server.base, "/v1/segment", jpeg_bytes())[0] == 200
    finally:
        server.stop()
    assert "self-check: no reference set beside the model" in server.stderr()


def test_a_second_reload_while_one_runs_is_refused(micro_bundle):
    from segedge.serve.holder import LoadOptions, ModelHolder, ReloadBusy

    holder = ModelHolder(LoadOptions(micro_bundle, artifact="fp32", threads=1))
    holder.start()
    try:
        with holder._reloading, pytest.raises(ReloadBusy):  # as if a reload were loading now
            holder.reload()
        assert holder.reload()["ok"] and holder.current.generation == 2
    finally:
        holder.close()


def test_without_the_serve_extra_it_is_one_line_naming_it(micro_bundle, monkeypatch):
    import segedge.util.optional

    monkeypatch.setattr(segedge.util.optional, "missing_modules", lambda modules: ["starlette"])
    result = CliRunner().invoke(app, ["serve", str(micro_bundle)])
    assert result.exit_code == 6 and 'pip install "segedge[serve]"' in result.output, result.output


def test_the_page_files_are_package_data():
    """A file added to static/ that the wheel's patterns miss would be a 500 on a Pi and fine here."""
    import fnmatch

    import tomllib

    root = Path(__file__).resolve().parents[1]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["segedge.serve"]
    static = root / "segedge" / "serve" / "static"
    files = [path.relative_to(static.parent).as_posix() for path in static.iterdir()]
    assert {"static/index.html", "static/app.js", "static/style.css"} <= set(files)
    assert all(any(fnmatch.fnmatch(name, pattern) for pattern in patterns) for name in files), (files, patterns)
