"""Issue 16, item 6: labels, palette, void, outputs and pre-processing live inside every artifact.

Read back with the edge's reader (``flatbuffers`` for TFLite, onnxruntime for
ONNX; no TensorFlow), compared with ``segedge.contract.labels`` (the independent
source of VOC's names and colours) and with the manifest written beside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segedge.cli import app
from segedge.contract import metadata
from segedge.contract.labels import PALETTE, VOC_CLASSES, VOID
from segedge.contract.manifest import load_manifest
from segedge.contract.runtime import open_backend
from segedge.edge.predictor import load
from segedge.util.errors import ModelError


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 500x375 photo (not the model's size or aspect) with a bright square on a dark ground."""
    pixels = np.full((375, 500, 3), 30, dtype=np.uint8)
    pixels[100:300, 150:380] = (220, 40, 60)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels, "RGB").save(path)
    return path


def test_every_artifact_carries_the_labels_palette_and_preprocessing(tiny_bundle: Path):
    manifest = load_manifest(tiny_bundle)
    assert len(manifest.artifacts) == 6
    for name, info in manifest.artifacts.items():
        document = metadata.read_artifact(tiny_bundle / info.file)
        assert document is not None, name
        assert document["artifact"] == name and document["runtime"] == info.runtime
        assert document["classes"] == list(VOC_CLASSES)
        assert document["palette"] == [list(rgb) for rgb in PALETTE[: len(VOC_CLASSES)]]
        assert document["void"] == VOID and document["model_outputs"] == manifest.model_outputs
        pre = document["preprocess"]
        assert (pre["height"], pre["width"]) == (info.input.shape[1], info.input.shape[2])
        assert pre["input"] == "pixels" and pre["scaling"] == manifest.preprocess.scaling
        # the manifest's hash covers the embedded metadata (embedded before hashing)
        from segedge.util import fileio
        assert fileio.sha256_file(tiny_bundle / info.file) == info.sha256


def test_reembedding_keeps_the_model_and_replaces_the_entry(tiny_bundle: Path, tmp_path: Path):
    """One ``segedge`` entry, the new one; the model computes exactly what it did."""
    pytest.importorskip("tensorflow")
    info = load_manifest(tiny_bundle).artifacts["fp32"]
    original = tiny_bundle / info.file
    document = {**metadata.read_artifact(original), "classes": ["x", "y"]}
    copy = tmp_path / "model.tflite"
    copy.write_bytes(metadata.embed_tflite(original.read_bytes(), document))
    assert metadata.read_artifact(copy)["classes"] == ["x", "y"]
    assert abs(copy.stat().st_size - original.stat().st_size) < 1000  # replaced, not appended
    pixels = np.random.default_rng(0).integers(0, 256, (1, *info.input.shape[1:]), dtype=np.uint8)
    outputs = []
    for path in (original, copy):
        backend = open_backend(path)
        try:
            outputs.append(backend.run(pixels))
        finally:
            backend.close()
    assert np.array_equal(outputs[0], outputs[1])


def test_a_tflite_file_without_metadata_reads_as_none(tmp_path: Path):
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    path = tmp_path / "plain.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert metadata.read_tflite(path) is None
    (tmp_path / "junk.tflite").write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 40)
    with pytest.raises(ModelError, match="damaged"):
        metadata.read_tflite(tmp_path / "junk.tflite")


@pytest.mark.parametrize("name", ["int8", "onnx-int8"])
def test_a_bare_artifact_predicts_what_its_bundle_predicts(tiny_bundle: Path, tmp_path: Path, photo: Path, name):
    info = load_manifest(tiny_bundle).artifacts[name]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy2(tiny_bundle / info.file, alone / info.file)
    with load(tiny_bundle, artifact=name, threads=1) as bundled, load(alone / info.file, threads=1) as bare:
        assert bare.artifact == name and bare.classes == list(VOC_CLASSES)
        assert bare.manifest.palette == bundled.manifest.palette
        assert np.array_equal(bare.predict(photo), bundled.predict(photo))

    result = invoke("predict", alone / info.file, photo, "--out", tmp_path / "o", "--threads", "1")
    assert result.exit_code == 0, result.output
    via_bundle = invoke("predict", tiny_bundle, photo, "--format", name, "--out", tmp_path / "b", "--threads", "1")
    assert via_bundle.exit_code == 0, via_bundle.output
    masks = sorted(p.relative_to(tmp_path / "o") for p in (tmp_path / "o").rglob("*.png"))
    assert masks and masks == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    for relative in masks:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / relative)),
                              np.asarray(Image.open(tmp_path / "b" / relative))), relative


def _swap_two_classes(tiny_bundle: Path, tmp_path: Path) -> Path:
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    data = json.loads((bundle / "manifest.json").read_text())
    data["classes"][1], data["classes"][2] = data["classes"][2], data["classes"][1]
    (bundle / "manifest.json").write_text(json.dumps(data))
    return bundle


def test_a_manifest_with_two_class_names_swapped_is_refused(tiny_bundle: Path, tmp_path: Path, photo: Path):
    bundle = _swap_two_classes(tiny_bundle, tmp_path)
    file = load_manifest(bundle).artifacts["int8"].file
    with pytest.raises(ModelError, match=r"classes\[1\] is 'aeroplane' in the file but 'bicycle' in the manifest"):
        load(bundle, artifact="int8")

    result = invoke("predict", bundle, photo, "--format", "int8", "--out", tmp_path / "o")
    assert result.exit_code == 4, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and file in lines[0] and "classes[1]" in lines[0], result.output
    assert "Traceback" not in result.output

    result = invoke("bench", bundle, "--out", tmp_path / "report", "--no-keras", "--format", "onnx-int8",
                    "--runs", "2", "--warmup", "1", "--threads", "1", "--e2e-images", "1")
    assert result.exit_code == 4, result.output
    lines = error_lines(result.output)
    onnx_file = load_manifest(bundle).artifacts["onnx-int8"].file
    assert len(lines) == 1 and onnx_file in lines[0] and "classes[1]" in lines[0], result.output
    assert "Traceback" not in result.output
