"""``segedge.edge.load`` on the exported tiny bundle: every backend, parity, checks against the manifest."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segedge.contract.manifest import load_manifest
from segedge.contract.runtime import TensorSpec, quantize
from segedge.edge.predictor import default_threads, load
from segedge.util.errors import ConfigError, ModelError

BACKENDS = [("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")]


def artifact_name(bundle: Path, runtime: str, precision: str) -> str:
    for name, info in load_manifest(bundle).artifacts.items():
        if (info.runtime, info.precision) == (runtime, precision):
            return name
    raise LookupError(f"{bundle} has no {runtime} {precision} artifact")


def bundle_copy(bundle: Path, dest: Path, names: list[str]) -> Path:
    """A private bundle with only the named artifacts, whose manifest a test may edit."""
    manifest = load_manifest(bundle)
    dest.mkdir(parents=True)
    shutil.copy2(bundle / "manifest.json", dest / "manifest.json")
    for name in names:
        shutil.copy2(bundle / manifest.artifacts[name].file, dest / manifest.artifacts[name].file)
    return dest


def edit_manifest(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def reference_truth(bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reference inputs (model size, uint8) and Keras masks with extra outputs mapped to void."""
    manifest = load_manifest(bundle)
    with np.load(bundle / "reference.npz") as ref:
        inputs, keras = ref["inputs"], ref["keras"]
    return inputs, np.where(keras >= manifest.num_classes, manifest.void, keras).astype(np.uint8)


def odd_image(width: int = 37, height: int = 53, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize(("runtime", "precision"), BACKENDS)
def test_each_backend_predicts_at_the_original_odd_size(tiny_bundle, runtime, precision):
    name = artifact_name(tiny_bundle, runtime, precision)
    manifest = load_manifest(tiny_bundle)
    with load(tiny_bundle, artifact=name) as seg:
        assert seg.backend.runtime.value == runtime
        assert seg.backend.input.dtype == manifest.artifacts[name].input.dtype
        assert seg.backend.threads == default_threads() == len(os.sched_getaffinity(0))  # LiteRT default is 1
        image = odd_image()
        mask = seg.predict(image)
        assert mask.shape == (53, 37) and mask.dtype == np.uint8
        allowed = set(range(manifest.num_classes)) | {manifest.void}
        assert set(np.unique(mask).tolist()) <= allowed
        assert seg.upsample == manifest.upsample == "logits"  # the export default, bilinear on the logits
        assert [m.shape for m in seg.predict_batch([image, odd_image(64, 31, 1)])] == [(53, 37), (31, 64)]
    with load(tiny_bundle, artifact=name, upsample="mask") as seg:
        # --upsample mask: the model-size mask resized back with nearest neighbour: at whole-number scale
        # factors (2 across, 3 down) that is every model pixel repeated into a 2x3 block.
        spec = manifest.preprocess
        large = odd_image(2 * spec.width, 3 * spec.height, 2)
        model_mask = seg.model_masks([large])[0]
        np.testing.assert_array_equal(seg.predict(large), np.repeat(np.repeat(model_mask, 3, axis=0), 2, axis=1))


@pytest.mark.parametrize("runtime", ["tflite", "onnx"])
def test_fp32_matches_keras_reference(tiny_bundle, runtime):
    inputs, keras = reference_truth(tiny_bundle)
    with load(tiny_bundle, artifact=artifact_name(tiny_bundle, runtime, "fp32")) as seg:
        masks = np.stack(seg.predict_batch([Image.fromarray(x) for x in inputs]))
    agreement = float((masks == keras).mean())
    assert agreement >= 0.999, f"{runtime} fp32 agrees with Keras on {agreement:.5f} of pixels"


def test_int8_tflite_stays_close_to_keras(tiny_bundle):
    inputs, keras = reference_truth(tiny_bundle)
    with load(tiny_bundle, artifact=artifact_name(tiny_bundle, "tflite", "int8")) as seg:
        masks = np.stack(seg.predict_batch([Image.fromarray(x) for x in inputs]))
    assert float((masks == keras).mean()) >= 0.7


def test_quantized_input_uses_the_models_own_scale_and_zero_point(tiny_bundle):
    with load(tiny_bundle, artifact=artifact_name(tiny_bundle, "tflite", "int8")) as seg:
        backend = seg.backend
        detail = backend._interpreter.get_input_details()[0]
        scale, zero_point = detail["quantization"]
        assert backend.input.quantized and scale > 0
        assert (backend.input.scale, backend.input.zero_point) == (pytest.approx(scale), zero_point)
        spec = seg.manifest.preprocess
        pixels = np.random.default_rng(3).integers(0, 256, (1, spec.height, spec.width, 3), dtype=np.uint8)
        values = pixels.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
        info = np.iinfo(detail["dtype"])
        # Pixels, and floats between and past them (where a floor or a wrong zero point would show).
        between = np.random.default_rng(4).uniform(-1.5, 1.5, values.shape).astype(np.float32)
        for given in (values, between):
            prepared = backend.prepare(given)
            assert prepared.dtype == detail["dtype"] and prepared.shape == given.shape
            # What must hold for any correct quantizer with this scale and zero point: each code, read back as
            # (code - zero_point) * scale, is the representable value nearest to the input (within half a step),
            # except where the input lies past the end of the code range, where the code is that end.
            codes = prepared.astype(np.int64)
            # A pixel-input model (issue 16) quantizes the pixel value p = (x - offset) / scale, not x.
            model_in = ((given.astype(np.float64) - spec.offset) / spec.scale if spec.pixels_in
                        else given.astype(np.float64))
            steps = model_in / scale + zero_point  # the input in units of one code step
            inside = (steps >= info.min) & (steps <= info.max)
            assert inside.any() and np.abs(codes - steps)[inside].max() <= 0.5 + 1e-3
            assert (codes[steps < info.min] == info.min).all() and (codes[steps > info.max] == info.max).all()
        assert (steps < info.min).any() and (steps > info.max).any()  # the floats did reach both ends
        # The 256 pixel values scale to 256 increasing inputs: their codes never decrease.
        ramp = np.arange(256, dtype=np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
        ramp_codes = backend.prepare(np.resize(ramp, (1, spec.height, spec.width, 3))).astype(np.int64).ravel()[:256]
        assert (np.diff(ramp_codes) >= 0).all() and ramp_codes[0] < ramp_codes[-1]


def test_quantize_saturates_with_a_nonzero_zero_point():
    spec = TensorSpec("x", (1, 2), "int8", scale=0.5, zero_point=-3)
    values = np.array([[-100.0, -1.0, 0.0, 0.26, 1.0, 100.0]], dtype=np.float32)
    np.testing.assert_array_equal(quantize(values, spec), np.array([[-128, -5, -3, -2, -1, 127]], dtype=np.int8))


def test_python_api_one_liner(tiny_bundle):
    from segedge.edge import load as api_load

    seg = api_load(tiny_bundle / "model_int8.tflite")  # the file name segedge.contract.targets gives the int8 TFLite
    mask = seg.predict(odd_image(40, 30))
    assert mask.shape == (30, 40)
    assert seg.predict(np.asarray(odd_image(40, 30))).shape == (30, 40)  # an RGB array works too


def test_default_artifact_prefers_int8_tflite_then_fp32_then_onnx(tiny_bundle, tmp_path):
    names = [artifact_name(tiny_bundle, *kind) for kind in (("tflite", "int8"), ("tflite", "fp32"), ("onnx", "fp32"))]
    bundle = bundle_copy(tiny_bundle, tmp_path / "b", names)
    manifest = load_manifest(bundle)
    for expected in names:
        with load(bundle, threads=1) as seg:
            assert seg.artifact == expected and seg.backend.threads == 1
        (bundle / manifest.artifacts[expected].file).unlink()
    with pytest.raises(ModelError, match="no model file"):
        load(bundle)


def test_model_input_size_differs_from_manifest(tiny_bundle, tmp_path):
    name = artifact_name(tiny_bundle, "tflite", "fp32")
    bundle = bundle_copy(tiny_bundle, tmp_path / "b", [name])
    size = load_manifest(bundle).preprocess.height
    edit_manifest(bundle, lambda d: d["preprocess"].update(height=size + 32, width=size + 32))
    with pytest.raises(ModelError) as err:
        load(bundle, artifact=name)
    message = err.value.message
    assert f"{size}x{size}" in message and f"{size + 32}x{size + 32}" in message and "model_" in message


@pytest.mark.parametrize(("runtime", "precision"), [("tflite", "fp32"), ("onnx", "fp32")])
def test_class_count_differs_from_manifest(tiny_bundle, tmp_path, runtime, precision):
    name = artifact_name(tiny_bundle, runtime, precision)
    bundle = bundle_copy(tiny_bundle, tmp_path / "b", [name])
    outputs = load_manifest(bundle).model_outputs
    edit_manifest(bundle, lambda d: d.update(model_outputs=outputs - 1))
    with pytest.raises(ModelError) as err:
        load(bundle / load_manifest(bundle).artifacts[name].file)
    assert f"has {outputs} output classes" in err.value.message and f"is {outputs - 1}" in err.value.message


def test_input_dtype_differs_from_manifest(tiny_bundle, tmp_path):
    name = artifact_name(tiny_bundle, "tflite", "int8")
    bundle = bundle_copy(tiny_bundle, tmp_path / "b", [name])
    actual = load_manifest(bundle).artifacts[name].input.dtype
    edit_manifest(bundle, lambda d: d["artifacts"][name]["input"].update(dtype="float32"))
    with pytest.raises(ModelError) as err:
        load(bundle, artifact=name)
    assert actual in err.value.message and "float32" in err.value.message


def test_changed_model_bytes_are_refused_before_loading(tiny_bundle, tmp_path):
    name = artifact_name(tiny_bundle, "tflite", "fp32")
    bundle = bundle_copy(tiny_bundle, tmp_path / "b", [name])
    model = bundle / load_manifest(bundle).artifacts[name].file
    with open(model, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="sha256"):
        load(model)


def test_model_without_manifest_or_unlisted(tiny_bundle, tmp_path):
    name = artifact_name(tiny_bundle, "tflite", "fp32")
    file = load_manifest(tiny_bundle).artifacts[name].file
    (tmp_path / "alone").mkdir()
    shutil.copy2(tiny_bundle / file, tmp_path / "alone" / file)
    with load(tmp_path / "alone" / file) as bare:  # a segedge artifact alone runs on its embedded metadata
        assert bare.artifact == name
    (tmp_path / "alone" / "other.tflite").write_bytes(b"\x00" * 64)  # not one: the manifest hint
    with pytest.raises(ModelError, match="manifest.json beside it"):
        load(tmp_path / "alone" / "other.tflite")
    bundle = bundle_copy(tiny_bundle, tmp_path / "b", [name])
    shutil.copy2(bundle / file, bundle / "other.tflite")
    with pytest.raises(ModelError, match="not listed"):
        load(bundle / "other.tflite")
    with pytest.raises(ModelError, match="no such bundle"):
        load(tmp_path / "missing")


def test_bad_choices_are_config_errors(tiny_bundle):
    fp32 = artifact_name(tiny_bundle, "tflite", "fp32")
    with pytest.raises(ConfigError, match="no artifact named 'nope'"):
        load(tiny_bundle, artifact="nope")
    with pytest.raises(ConfigError, match="--threads"):
        load(tiny_bundle, artifact=fp32, threads=0)
    with pytest.raises(ConfigError, match="--runtime"):
        load(tiny_bundle, artifact=fp32, runtime="onnx")
    with pytest.raises(ConfigError, match="--runtime must be"):
        load(tiny_bundle, runtime="tensorrt")
    with load(tiny_bundle, runtime="onnx", threads=1) as seg:  # that runtime's int8 model first
        assert seg.info.runtime == "onnx" and seg.info.precision == "int8"


def test_letterbox_manifest_restores_the_original_size(tiny_bundle, tmp_path):
    name = artifact_name(tiny_bundle, "tflite", "fp32")
    bundle = bundle_copy(tiny_bundle, tmp_path / "b", [name])
    edit_manifest(bundle, lambda d: d["preprocess"].update(resize="letterbox"))
    # The file's embedded metadata must say so too (a manifest alone that disagrees with it is refused).
    pytest.importorskip("tensorflow")
    from segedge.contract import metadata
    from segedge.util import fileio
    model = bundle / load_manifest(bundle).artifacts[name].file
    document = metadata.read_artifact(model)
    document["preprocess"]["resize"] = "letterbox"
    model.write_bytes(metadata.embed_tflite(model.read_bytes(), document))
    edit_manifest(bundle, lambda d: d["artifacts"][name].update(sha256=fileio.sha256_file(model),
                                                                bytes=model.stat().st_size))
    with load(bundle, threads=1) as seg:
        assert seg.predict(odd_image(91, 23)).shape == (23, 91)


class VoidClassBackend:
    """Stands in for a seed-preset model (22 outputs, index 21 = void): left half void, right half class 7 (car)."""

    def __init__(self, size: int, outputs: int) -> None:
        self.size, self.outputs, self.threads, self.closed = size, outputs, 1, False

    def run(self, batch: np.ndarray) -> np.ndarray:
        logits = np.zeros((len(batch), self.size, self.size, self.outputs), dtype=np.float32)
        logits[:, :, : self.size // 2, self.outputs - 1] = 1.0
        logits[:, :, self.size // 2 :, 7] = 1.0
        return logits

    def run_raw(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)

    def deferred(self, raw: np.ndarray) -> tuple[np.ndarray, None]:
        return raw, None

    def close(self) -> None:
        self.closed = True


def test_extra_void_output_is_saved_as_255(tiny_bundle):
    from dataclasses import replace

    from segedge.edge.predictor import Segmenter

    manifest = load_manifest(tiny_bundle)
    seed_like = replace(manifest, void_handling="class", model_outputs=manifest.num_classes + 1)
    name = artifact_name(tiny_bundle, "tflite", "fp32")
    backend = VoidClassBackend(manifest.preprocess.height, seed_like.model_outputs)
    with Segmenter(tiny_bundle / "x.tflite", seed_like, name, manifest.artifacts[name], backend) as seg:
        mask = seg.predict(odd_image(40, 10))
        assert seg.fractions(mask) == {"car": 0.5, "void": 0.5}
    assert set(np.unique(mask[:, :20]).tolist()) == {manifest.void} and backend.closed
