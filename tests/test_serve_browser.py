"""The page at / in a real browser: headless Chromium, driven over the DevTools protocol on a pipe.

A video plays as the camera. The test checks what a person sees: the live overlay is drawn (the
screenshot is not blank and the stream image has pixels), the frame counter rises, the legend
lists the bundle's class names, and a photo chosen in the upload form comes back with its mask.
Chromium is Debian's ``chromium`` package (``.ci/run`` installs it); without it the test skips.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_serve_api import ServeProcess, jpeg_bytes, write_video

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium here: apt-get install chromium (.ci/run does)")


class DevTools:
    """Chromium with ``--remote-debugging-pipe``: JSON messages ending in NUL on fds 3 (in) and 4 (out)."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                 "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.process = subprocess.Popen(["bash", "-c", script, executable, *flags], pass_fds=(to_browser_r,
                                        from_browser_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise AssertionError(f"{method}: {reply['error']}")
                    return reply["result"]
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise AssertionError(f"Chromium closed the pipe during {method}")
            self._buffer += chunk
        raise AssertionError(f"{method}: no answer in {timeout} s")

    def page(self, method: str, params: dict | None = None) -> dict:
        return self.send(method, params, self.session)

    def evaluate(self, expression: str):
        result = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"never true in {timeout} s: {expression}")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (AssertionError, OSError):
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture
def chrome(tmp_path):
    tools = DevTools(browser(), tmp_path / "profile")
    yield tools
    tools.close()


def frames_shown(tools: DevTools) -> int:
    return int(tools.evaluate("Number(document.getElementById('frames').textContent) || 0"))


def test_page_shows_the_live_overlay_legend_frames_and_an_uploaded_mask(chrome, micro_bundle, tmp_path):
    from segedge.contract.manifest import load_manifest

    clip = write_video(tmp_path / "clip.avi", frames=30, size=(160, 120))
    server = ServeProcess(micro_bundle, "--format", "fp32", "--camera", str(clip))
    try:
        chrome.page("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 1000, "deviceScaleFactor": 1,
                                                           "mobile": False})
        chrome.page("Page.navigate", {"url": server.base + "/"})
        chrome.wait_for("document.getElementById('stream').naturalWidth > 0")  # an MJPEG frame is drawn
        first = frames_shown(chrome)
        chrome.wait_for(f"Number(document.getElementById('frames').textContent) > {first}")
        assert frames_shown(chrome) > first
        names = chrome.evaluate("[...document.querySelectorAll('#legend li .name')].map(e => e.textContent)")
        assert set(load_manifest(micro_bundle).classes) <= set(names)
        assert chrome.evaluate("document.getElementById('health').textContent") == "ok"
        assert "fp32" in chrome.evaluate("document.getElementById('model').textContent")
        parity = chrome.evaluate("document.getElementById('parity').textContent")
        assert "agreement (export)100.0 %" in parity and "self-checkpassed" in parity

        png = base64.b64decode(chrome.page("Page.captureScreenshot", {"format": "png"})["data"])
        (Path(os.environ.get("SEGEDGE_SCREENSHOT_DIR", tmp_path)) / "serve_page.png").write_bytes(png)  # to look at
        shot = Image.open(io.BytesIO(png))
        pixels = np.asarray(shot.convert("RGB"), dtype=np.float32)
        assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # not blank
        box = chrome.evaluate("(() => { const r = document.getElementById('stream').getBoundingClientRect(); "
                              "return [r.left, r.top, r.right, r.bottom].map(Math.round); })()")
        stream = pixels[box[1] : box[3], box[0] : box[2]]
        assert stream.size and stream.std() > 5  # the video with its overlay, not an empty box

        chrome.evaluate("document.getElementById('snapshot').click()")
        note = chrome.wait_for("(t => t.startsWith('saved') && t)"
                               "(document.getElementById('snapshot-note').textContent)")
        overlay_name, mask_name = note.removeprefix("saved ").split(" and ")
        assert overlay_name.endswith("_overlay.jpg") and mask_name == overlay_name.replace("_overlay.jpg", ".png")

        photo = tmp_path / "photo.jpg"
        photo.write_bytes(jpeg_bytes((120, 90)))
        document = chrome.page("DOM.getDocument")["root"]["nodeId"]
        field = chrome.page("DOM.querySelector", {"nodeId": document, "selector": "#upload"})["nodeId"]
        chrome.page("DOM.setFileInputFiles", {"nodeId": field, "files": [str(photo)]})
        chrome.evaluate("document.getElementById('upload-form').requestSubmit()")
        chrome.wait_for("!document.getElementById('upload-result').hidden")
        assert chrome.wait_for("document.getElementById('upload-mask').naturalWidth") == 120
        assert chrome.evaluate("document.getElementById('upload-overlay').naturalHeight") == 90
        assert "120 × 90 px" in chrome.evaluate("document.getElementById('upload-timing').textContent")
    finally:
        server.stop()
