"""Issue 17, parts 3 and 4: any input size (non-square, letterbox) and exporting a Keras model segedge did not train.

What holds by construction is asserted, never one CPU's rounding of a barely
trained model: the meanstd scaling computes ``(p - mean) / std`` per channel; its
folding into the first convolution is exact in float; the fp32 artifact of a
model with random weights agrees with Keras (float arithmetic, same function);
the manifest carries what the user stated; a masks-less dataset gives mIoU
"n/a"; a non-square run predicts masks at each image's own size.
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
from segedge.contract.preprocess import PreprocessSpec, resize_mask, resize_uint8, scale_pixels, unscale_pixels
from segedge.train.config import make_config, parse_image_size
from segedge.util.errors import ConfigError

MEAN = (123.675, 116.28, 103.53)  # ImageNet, pixel units (torchvision's values x 255)
STD = (58.395, 57.12, 57.375)
BYO_CLASSES = ["sky", "road", "car", "person", "tree"]
BYO_SIZE = (160, 224)
FAST_BENCH = ["--runs", "2", "--warmup", "1", "--threads", "1", "--e2e-images", "1", "--gallery", "1",
              "--no-keras", "--no-plot"]


def cli(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def meanstd_spec(height: int = 8, width: int = 8, **kw) -> PreprocessSpec:
    return PreprocessSpec(height, width, "meanstd", mean=MEAN, std=STD, **kw)


# -- units: the spec, sizes, letterbox ------------------------------------------------------------------


def test_meanstd_scales_each_channel_by_its_own_mean_and_std():
    spec = meanstd_spec()
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    expected = (pixels.astype(np.float64) - np.array(MEAN)) / np.array(STD)
    assert np.abs(scale_pixels(pixels, spec) - expected).max() < 1e-5
    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    assert np.array_equal(unscale_pixels(scale_pixels(levels, spec), spec), levels)  # every level comes back
    again = PreprocessSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.to_dict()["mean"] == list(MEAN)
    assert spec.letterbox_fill == (124, 116, 104)  # the pixel each channel maps to 0, rounded


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"scaling": "meanstd"}, "--mean"),
    ({"scaling": "meanstd", "mean": MEAN, "std": (1.0, 0.0, 1.0)}, "--std"),
    ({"scaling": "mobilenet", "mean": MEAN, "std": STD}, "meanstd only"),
    ({"scaling": "meanstd", "mean": (1.0, 2.0), "std": STD}, "--mean"),
])
def test_meanstd_mistakes_are_config_errors_naming_the_option(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        PreprocessSpec(8, 8, **kwargs)


def test_image_size_is_square_n_or_height_x_width_in_multiples_of_32(tmp_path):
    assert parse_image_size(224) == (224, 224)
    assert parse_image_size("160x224") == (160, 224)
    with pytest.raises(ConfigError, match="96 or 128"):
        parse_image_size("100")
    with pytest.raises(ConfigError, match="width 200 .* 192 or 224"):
        parse_image_size("160x200")
    square = make_config(tmp_path, tmp_path / "r", image_size="224")
    assert square.image_size == 224 and square.to_dict()["image_size"] == 224  # config.json as before
    wide = make_config(tmp_path, tmp_path / "r", image_size="64x96", resize="letterbox")
    spec = wide.preprocess_spec()
    assert (spec.height, spec.width, spec.resize) == (64, 96, "letterbox")
    assert wide.to_dict()["preprocess"]["width"] == 96


def test_letterbox_pads_the_image_with_the_zero_pixel_and_the_mask_with_void():
    spec = PreprocessSpec(64, 64, "mobilenet", resize="letterbox")
    image = Image.new("RGB", (64, 32), (10, 200, 30))  # wide: padded above and below
    pixels, placement = resize_uint8(image, spec)
    assert (placement.top, placement.height, placement.width) == (16, 32, 64)
    assert (pixels[:16] == 128).all() and (pixels[48:] == 128).all()  # 127.5 scales to 0 in [-1, 1]
    assert (pixels[16:48] == (10, 200, 30)).all()
    mask = resize_mask(np.full((32, 64), 7, np.uint8), spec)
    assert (mask[:16] == 255).all() and (mask[48:] == 255).all() and (mask[16:48] == 7).all()
    unit = PreprocessSpec(64, 64, "unit", resize="letterbox")
    assert (resize_uint8(image, unit)[0][:16] == 0).all()


# -- the fold: exact in float --------------------------------------------------------------------------


@pytest.mark.parametrize("stem", ["conv", "two_consumers"])
def test_meanstd_folding_is_exact_in_float(stem):
    """The pixel graph on p equals the model on (p - mean) / std computed here in numpy."""
    pytest.importorskip("tensorflow")
    import keras

    from segedge.export.graph import prepare_export_model

    keras.utils.set_random_seed(5)
    inputs = keras.Input((33, 46, 3), name="image")
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(inputs)
    if stem == "two_consumers":  # the input feeds two layers: the Rescaling fallback, per channel
        x = keras.layers.Concatenate()([x, keras.layers.AveragePooling2D(2, padding="same")(inputs)])
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(keras.layers.ReLU()(x)))
    export = prepare_export_model(model, scaling=meanstd_spec(33, 46))
    assert ("scaling folded" if stem == "conv" else "Rescaling") in export.rewrites[-1]
    pixels = np.random.default_rng(1).integers(0, 256, (1, 33, 46, 3)).astype(np.float32)
    normalized = ((pixels - np.array(MEAN)) / np.array(STD)).astype(np.float32)
    expected = np.asarray(model(normalized, training=False))
    got = np.asarray(export.model(pixels, training=False))
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))


# -- bring your own model: errors --------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory) -> Path:
    """A 2-layer model with 3 output channels at 32x48 (not built by segedge).

    Random biases: with Keras' zero biases a letterbox band (input exactly 0 after scaling) gives
    three equal scores, whose argmax any float rounding may flip.
    """
    pytest.importorskip("tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    bias = keras.initializers.RandomNormal(0.0, 0.5)
    inputs = keras.Input((32, 48, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", bias_initializer=bias)(inputs)
    path = tmp_path_factory.mktemp("small") / "small.keras"
    keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax", bias_initializer=bias)(x)).save(path)
    return path


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Images only, no masks, two aspect ratios: what a user of a model from elsewhere may have."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    for i in range(6):
        size = (120, 80) if i % 2 else (90, 130)
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"img{i}.jpg")
    return folder


@pytest.mark.parametrize(("extra", "code", "named"), [
    (["--classes", "a,b", "--scaling", "unit"], 2, "3 output channels but --classes names 2"),
    (["--classes", "a,b,c", "--scaling", "unit", "--image-size", "64x48"], 2, "contradicts"),
    (["--classes", "a,b,c"], 2, "--scaling"),
    (["--classes", "a,b,c", "--scaling", "meanstd", "--mean", "1,2,3"], 2, "--std"),
    (["--scaling", "unit"], 2, "--classes"),
])
def test_byo_mistakes_are_one_line_errors(small_keras, image_folder, tmp_path, extra, code, named):
    result = cli("export", small_keras, "--data", image_folder, "--out", tmp_path / "b", "--format", "fp32", *extra)
    assert result.exit_code == code, result.output
    assert result.output.startswith("error: ") and named in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "b").exists()


def test_byo_needs_data_and_run_folders_refuse_byo_options(small_keras, micro_run, tmp_path):
    result = cli("export", small_keras, "--classes", "a,b,c", "--scaling", "unit", "--out", tmp_path / "b")
    assert result.exit_code == 2 and "--data" in result.output, result.output
    result = cli("export", micro_run, "--classes", "a,b", "--out", tmp_path / "c")
    assert result.exit_code == 2 and "--classes: for a .keras model only" in result.output, result.output


def test_export_resize_letterbox_pads_the_reference_inputs(micro_run, tmp_path):
    """``export --resize letterbox`` on a stretch run: the bundle (and its reference set) letterbox."""
    from segedge.contract.reference import Reference

    bundle = tmp_path / "bundle"
    result = cli("export", micro_run, "--out", bundle, "--format", "fp32", "--eval-images", "4",
                 "--resize", "letterbox")
    assert result.exit_code == 0, result.output
    assert json.loads((bundle / "manifest.json").read_text())["preprocess"]["resize"] == "letterbox"
    reference = Reference.load(bundle / "reference.npz")
    checked = 0
    for pixels, truth in zip(reference.inputs, reference.truth_full, strict=True):
        height, width = truth.shape
        if width > height * 1.1:  # wide: rows above the content are the zero pixel (127.5 -> 128)
            assert (pixels[0] == 128).all()
            checked += 1
        elif height > width * 1.1:
            assert (pixels[:, 0] == 128).all()
            checked += 1
    assert checked, "no non-square reference image to check"


@pytest.fixture(scope="module")
def dynamic_keras(tmp_path_factory) -> Path:
    """Any input size (None, None), 2 classes; its output is half the input size unless upsampled."""
    pytest.importorskip("tensorflow")
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    folder = tmp_path_factory.mktemp("dynamic")
    keras.Model(inputs, keras.layers.Conv2D(2, 1)(keras.layers.UpSampling2D(2)(x))).save(folder / "full.keras")
    keras.Model(inputs, keras.layers.Conv2D(2, 1)(x)).save(folder / "half.keras")
    return folder


def test_byo_dynamic_input_needs_a_size_and_output_must_match_it(dynamic_keras, image_folder, tmp_path):
    base = ["--data", image_folder, "--format", "fp32", "--classes", "bg,fg", "--scaling", "unit",
            "--eval-images", "2"]
    result = cli("export", dynamic_keras / "full.keras", "--out", tmp_path / "a", *base)
    assert result.exit_code == 2 and "dynamic" in result.output and "--image-size" in result.output, result.output
    result = cli("export", dynamic_keras / "half.keras", "--out", tmp_path / "b", *base, "--image-size", "32x48")
    assert result.exit_code == 4 and "16x24" in result.output and "Resizing(32, 48)" in result.output, result.output
    result = cli("export", dynamic_keras / "full.keras", "--out", tmp_path / "c", *base, "--image-size", "32x48")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["artifacts"]["fp32"]["input"]["shape"] == [1, 32, 48, 3]
    assert manifest["artifacts"]["fp32"]["verify"]["agreement"] >= 0.999
    assert any("scaling folded" in n for n in manifest["artifacts"]["fp32"]["details"]["graph_rewrites"])


def test_byo_preprocess_file_and_palette_reach_the_manifest(small_keras, image_folder, tmp_path):
    """A --preprocess JSON file (classes, palette, meanstd, letterbox); a flag overrides the file."""
    described = tmp_path / "pre.json"
    described.write_text(json.dumps({"height": 32, "width": 48, "scaling": "meanstd", "mean": [100, 110, 120],
                                     "std": [50, 60, 70], "resize": "stretch", "classes": ["a", "b", "c"],
                                     "palette": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}))
    bundle = tmp_path / "bundle"
    result = cli("export", small_keras, "--data", image_folder, "--out", bundle, "--format", "fp32",
                 "--preprocess", described, "--resize", "letterbox", "--eval-images", "2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["classes"] == ["a", "b", "c"] and manifest["palette"] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    pre = manifest["preprocess"]
    assert (pre["mean"], pre["std"], pre["resize"]) == ([100, 110, 120], [50, 60, 70], "letterbox")
    assert manifest["source_model"]["output"] == "softmax"  # the model ends in a softmax activation
    reference_inputs = np.load(bundle / "reference.npz")["inputs"]
    assert (reference_inputs[0, :, 0] == (100, 110, 120)).all()  # letterbox fill: the mean, per channel


def test_byo_on_a_voc_folder_calibrates_on_train_and_scores_val_masks(synth_root, tmp_path):
    """A dataset with masks and splits: reference = val (with truth, so an mIoU), calibration = train."""
    pytest.importorskip("tensorflow")
    import keras

    from segedge.contract.labels import VOC_CLASSES
    from segedge.data.voc import VocDataset

    keras.utils.set_random_seed(2)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    model = tmp_path / "voc21.keras"
    keras.Model(inputs, keras.layers.Conv2D(21, 1)(x)).save(model)
    names = tmp_path / "classes.json"
    names.write_text(json.dumps(list(VOC_CLASSES)))
    bundle = tmp_path / "bundle"
    result = cli("export", model, "--data", synth_root, "--out", bundle, "--format", "fp32,int8",
                 "--classes", names, "--scaling", "mobilenet", "--eval-images", "3", "--calib-images", "4")
    assert result.exit_code == 0, result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    val = VocDataset.open(synth_root).ids("val")
    train = set(VocDataset.open(synth_root).ids("train"))
    assert manifest["reference"]["ids"] == val[:3] and manifest["reference"]["has_truth"] is True
    assert manifest["calibration"]["count"] == 4 and set(manifest["calibration"]["ids"]) <= train
    assert isinstance(manifest["artifacts"]["fp32"]["verify"]["miou"], float)
    assert manifest["classes"] == list(VOC_CLASSES)


# -- bring your own model: the end-to-end case -------------------------------------------------


def _mobilenet_v3_segmenter(path: Path) -> None:
    """MobileNetV3Small encoder (random weights, no built-in preprocessing) + 1x1 conv to 5 classes + resize."""
    import keras

    keras.utils.set_random_seed(17)
    encoder = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(*BYO_SIZE, 3),
                                                  include_preprocessing=False, minimalistic=True)
    logits = keras.layers.Conv2D(len(BYO_CLASSES), 1, name="classifier")(encoder.output)
    logits = keras.layers.Resizing(*BYO_SIZE, interpolation="bilinear", name="to_input_size")(logits)
    keras.Model(encoder.input, logits, name="byo_segmenter").save(path)


def test_byo_mobilenet_v3_exports_benches_and_predicts(image_folder, tmp_path):
    pytest.importorskip("tensorflow")
    model = tmp_path / "model.keras"
    _mobilenet_v3_segmenter(model)
    bundle = tmp_path / "bundle"
    result = cli("export", model, "--data", image_folder, "--out", bundle, "--format", "fp32,int8,onnx-int8",
                 "--classes", ",".join(BYO_CLASSES), "--scaling", "meanstd", "--mean", ",".join(map(str, MEAN)),
                 "--std", ",".join(map(str, STD)), "--calib-images", "3", "--eval-images", "3")
    assert result.exit_code == 0, result.output
    assert "mIoU n/a" in result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["classes"] == BYO_CLASSES and manifest["model_outputs"] == 5
    pre = manifest["preprocess"]
    assert (pre["height"], pre["width"], pre["scaling"], pre["input"]) == (*BYO_SIZE, "meanstd", "pixels")
    assert pre["mean"] == list(MEAN) and pre["std"] == list(STD)
    assert manifest["source_model"]["file"] == "model.keras"
    assert manifest["reference"]["has_truth"] is False
    assert set(manifest["artifacts"]) == {"fp32", "int8", "onnx-int8"}
    assert manifest["artifacts"]["fp32"]["verify"]["agreement"] >= 0.999  # float: the same function as Keras
    assert manifest["artifacts"]["fp32"]["verify"]["miou"] is None
    assert any("scaling folded" in note for note in manifest["artifacts"]["fp32"]["details"]["graph_rewrites"])

    # The gate with no masks checks agreement only: fp32 must match Keras; the random-weight int8 models
    # have no agreement they are owed (their bound is 0 here), mIoU is n/a for every row.
    out = tmp_path / "report"
    result = cli("bench", bundle, "--out", out, *FAST_BENCH, "--min-agreement", "0",
                 "--min-agreement", "fp32=0.99")
    assert result.exit_code == 0, result.output
    assert "parity gate: passed" in result.output and "n/a" in result.output
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"]["fp32"]["miou"] is None and report["accuracy"]["fp32"]["agreement"] >= 0.99
    assert any("agreement with Keras only" in note for note in report["notes"])
    assert "No ground truth" in (out / "report.md").read_text()

    masks = tmp_path / "masks"
    result = cli("predict", bundle, image_folder / "img1.jpg", "--out", masks, "--format", "fp32")
    assert result.exit_code == 0, result.output
    mask = np.asarray(Image.open(masks / "img1.png"))
    assert mask.shape == (80, 120) and mask.max() < len(BYO_CLASSES)


# -- any size: a non-square, letterboxed training run ----------------------------------------------------


def test_non_square_letterbox_run_exports_and_predicts_at_the_original_size(synth_root, tmp_path):
    pytest.importorskip("tensorflow")
    run = tmp_path / "run"
    result = cli("train", synth_root, "--out", run, "--image-size", "64x96", "--resize", "letterbox",
                 "--epochs", "1", "--steps-per-epoch", "1", "--validation-steps", "1", "--batch-size", "4",
                 "--run-eagerly")
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["image_size"] == "64x96"
    assert (config["preprocess"]["height"], config["preprocess"]["width"]) == (64, 96)
    bundle = tmp_path / "bundle"
    result = cli("export", run, "--out", bundle, "--format", "fp32", "--eval-images", "2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["preprocess"]["resize"] == "letterbox"
    assert manifest["artifacts"]["fp32"]["input"]["shape"] == [1, 64, 96, 3]
    image = sorted((synth_root / "JPEGImages").glob("*.jpg"))[0]
    masks = tmp_path / "masks"
    result = cli("predict", bundle, image, "--out", masks)
    assert result.exit_code == 0, result.output
    with Image.open(image) as original:
        size = original.size
    assert Image.open(masks / f"{image.stem}.png").size == size
    shutil.rmtree(run / "checkpoints", ignore_errors=True)


# -- bring your own model: a dataset that declares its classes -------------------------------------------


def test_byo_takes_the_classes_a_pairs_dataset_declares_and_refuses_a_dataset_with_other_classes(
        small_keras, synth_root, tmp_path):
    """No --classes: the pairs dataset's classes.json names them, and its masks give an mIoU.
    A dataset whose masks label other classes (VOC's 21 here) cannot score a 3-class model: one line."""
    pytest.importorskip("tensorflow")
    data = tmp_path / "pairs"
    result = cli("data", "synth", data, "--images", "8", "--size", "48", "--classes", "3", "--layout", "pairs")
    assert result.exit_code == 0, result.output
    declared = json.loads((data / "classes.json").read_text())["classes"]
    bundle = tmp_path / "bundle"
    result = cli("export", small_keras, "--data", data, "--out", bundle, "--format", "fp32", "--scaling", "unit",
                 "--eval-images", "2", "--calib-images", "2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["classes"] == declared and len(declared) == 3
    assert manifest["reference"]["has_truth"] is True
    assert isinstance(manifest["artifacts"]["fp32"]["verify"]["miou"], float)

    result = cli("export", small_keras, "--data", synth_root, "--out", tmp_path / "b2", "--format", "fp32",
                 "--scaling", "unit", "--classes", "a,b,c")
    assert result.exit_code == 3, result.output
    assert result.output.startswith("error: ") and "21 classes" in result.output and "a, b, c" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "b2").exists()


@pytest.mark.parametrize(("classes", "palette", "named"), [
    (",".join(f"c{i}" for i in range(256)), None, "256 classes; at most 255"),
    ("background,car", [[0, 0, 0], [0, 0, 0]], r"palette colour \[0, 0, 0\] is used by classes 0 and 1"),
    ("background,car", [[0, 0, 0], [True, 0, 0]], r"give one \[R, G, B\]"),
    ("background,car", [[0, 0, 0]], "1 colours for 2 classes"),
])
def test_byo_classes_and_palette_follow_the_classes_json_rules(classes, palette, named):
    """Flags describe the same thing a dataset's classes.json does, so they are held to the same rules."""
    from segedge.export.byo_request import ByoRequest, describe_request

    request = ByoRequest(classes=classes, palette=palette, scaling="unit")
    with pytest.raises(ConfigError, match=named):
        describe_request(request)


def test_byo_flags_within_the_rules_keep_their_names_and_colours():
    from segedge.export.byo_request import ByoRequest, describe_request

    values = describe_request(ByoRequest(classes=" sky, road ", palette=[[1, 2, 3], [4, 5, 6], [7, 8, 9]],
                                         scaling="unit"))
    assert values["classes"] == ["sky", "road"] and values["palette"] == [[1, 2, 3], [4, 5, 6]]
