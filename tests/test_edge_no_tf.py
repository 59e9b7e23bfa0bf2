"""The edge package runs with TensorFlow, Keras and tf2onnx unimportable, as on a Pi.

A subprocess installs a meta-path finder that refuses those packages, imports
every module under ``segedge.edge`` and runs ``segedge predict`` on an image,
a folder and (where OpenCV is installed) a generated video for the TFLite fp32,
TFLite int8, ONNX fp32 and ONNX int8 artifacts of the exported bundle, then
checks none of them was imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image
from test_no_tensorflow import BLOCKER  # the one meta-path blocker for TF, Keras and tf2onnx

SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    from pathlib import Path
    from typer.testing import CliRunner

    import segedge.edge
    # The edge stage, plus the runtime module it runs artifacts with (shared with bench and export).
    modules = sorted([m.name for m in pkgutil.walk_packages(segedge.edge.__path__, "segedge.edge.")]
                     + ["segedge.contract.runtime"])
    for name in modules:
        importlib.import_module(name)
    import segedge.commands.predict
    from segedge.cli import app
    from segedge.edge import load

    bundle, work = Path(sys.argv[1]), Path(sys.argv[2])
    artifacts, camera = json.loads(sys.argv[3]), sys.argv[4] == "camera"
    for name in artifacts:
        out = work / "out" / name
        runs = [[str(work / "photos" / "a.png")], [str(work / "photos"), "--recursive"]]
        runs += [["--camera", str(work / "clip.avi"), "--every", "2"]] if camera else []
        for args in runs:
            r = CliRunner().invoke(app, ["predict", str(bundle), *args, "--out", str(out), "--format", name])
            assert r.exit_code == 0, (name, args, r.output)
        assert (out / "a.png").is_file() and (out / "a_overlay.jpg").is_file(), name
        assert (out / "sub" / "b.png").is_file(), name
        if camera:
            assert (out / "frame_000002.png").is_file() and (out / "frame_000002_overlay.jpg").is_file(), name
    from PIL import Image
    mask = load(bundle / "model_int8.tflite").predict(Image.open(work / "photos" / "a.png"))
    assert mask.shape == (53, 37), mask.shape
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "tf2onnx", "tf_keras"})
    assert not heavy, heavy
    print(json.dumps({"modules": modules}))
    """
)


def _write_clip(path: Path) -> bool:
    """A four-frame MJPG clip for the --camera run; False where OpenCV (the camera extra) is absent."""
    try:
        import cv2
    except ImportError:
        return False
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 60))
    for i in range(4):
        writer.write(np.full((60, 80, 3), 40 * i, dtype=np.uint8))
    writer.release()
    return True


def test_predict_runs_with_tensorflow_blocked(tiny_bundle, tmp_path):
    """Without OpenCV only the --camera runs are left out; images and folders are always checked."""
    from segedge.contract.manifest import load_manifest

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (53, 37, 3), dtype=np.uint8)).save(photos / "a.png")
    Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(photos / "sub" / "b.jpg")
    camera = _write_clip(tmp_path / "clip.avi")
    names = ["fp32", "int8", "onnx", "onnx-int8"]
    kinds = {(a.runtime, a.precision) for n, a in load_manifest(tiny_bundle).artifacts.items() if n in names}
    assert kinds == {("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")}

    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + SCRIPT, str(tiny_bundle), str(tmp_path), json.dumps(names),
         "camera" if camera else "no-camera"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
    modules = json.loads(result.stdout.strip().splitlines()[-1])["modules"]
    assert {"segedge.edge.predictor", "segedge.contract.runtime", "segedge.edge.camera"} <= set(modules)
