"""Model sizes: --encoder (MobileNetV2, MobileNetV3 Small/Large), --encoder-width (alpha) and --decoder-widths,
from config to every artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segedge.train.config import TrainConfig, make_config
from segedge.train.widths import ENCODER_WIDTHS, make_divisible, model_description, scaled_decoder_widths
from segedge.util.errors import ConfigError


def test_config_records_the_width_and_the_scaled_decoder(tmp_path):
    config = make_config(tmp_path / "data", tmp_path / "run", encoder_width=0.35)
    data = config.to_dict()
    assert data["encoder_width"] == 0.35 and list(data["decoder_widths"]) == [176, 88, 48, 24]
    again = TrainConfig.from_dict(json.loads(json.dumps(data)))  # through config.json's JSON
    assert again.encoder_width == 0.35 and again.decoder_widths == (176, 88, 48, 24)


def test_default_and_seed_preset_keep_the_seed_model(tmp_path):
    for preset in ("default", "seed"):
        config = make_config(tmp_path / "data", tmp_path / "run", preset)
        assert config.encoder_width == 1.0 and config.decoder_widths == (512, 256, 128, 64)


def test_decoder_widths_override_the_scaling(tmp_path):
    config = make_config(tmp_path / "d", tmp_path / "r", encoder_width=0.5, decoder_widths="64,32,16,8")
    assert config.decoder_widths == (64, 32, 16, 8)
    assert scaled_decoder_widths(0.5) == (256, 128, 64, 32) and scaled_decoder_widths(0.75) == (384, 192, 96, 48)


@pytest.mark.parametrize("bad", [{"encoder_width": 0.4}, {"encoder_width": "wide"}, {"encoder_width": True},
                                 {"decoder_widths": "64,32,16"}, {"decoder_widths": "64,32,16,0"},
                                 {"decoder_widths": "a,b,c,d"}])
def test_bad_widths_are_config_errors_naming_the_option(tmp_path, bad):
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path / "d", tmp_path / "r", **bad)
    assert ("--encoder-width" if "encoder_width" in bad else "--decoder-widths") in caught.value.message


def test_a_config_from_before_widths_describes_the_seed_model():
    assert model_description({"preset": "default"}) == {
        "encoder": "mobilenet_v2", "encoder_width": 1.0, "decoder_widths": [512, 256, 128, 64]}


def test_imagenet_weight_files_are_named_per_width_as_keras_names_them():
    from segedge.train.model import IMAGENET_WEIGHTS_FILE, imagenet_weights_file, imagenet_weights_url

    assert imagenet_weights_file(1.0) == IMAGENET_WEIGHTS_FILE
    assert imagenet_weights_file(0.35) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    assert imagenet_weights_file(0.5).endswith("_0.5_224_no_top.h5")  # Keras' f"{float(alpha)}"
    assert imagenet_weights_url(0.75).endswith("/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.75_224_no_top.h5")


@pytest.mark.parametrize("width", ENCODER_WIDTHS)
def test_skip_layers_exist_at_every_width_with_the_decoder_scaled(width):
    pytest.importorskip("tensorflow", reason="builds a Keras model")
    import keras

    from segedge.train.model import SKIP_LAYERS, build_unet

    size = 64
    model = build_unet(size, 3, encoder_width=width)
    strides = [size // model.get_layer(name).output.shape[1] for name in SKIP_LAYERS]
    assert strides == [2, 4, 8, 16, 32]
    assert model.output.shape[1:] == (size, size, 3)
    decoder = [layer.filters for layer in model.layers
               if isinstance(layer, keras.layers.Conv2DTranspose) and layer.name != "logits"]
    assert tuple(decoder) == scaled_decoder_widths(width)
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert first.filters == make_divisible(32 * width)  # MobileNetV2's stem scales with alpha (0.35: 16)


def test_train_cli_records_the_width_in_config_json(synth_root, tmp_path):
    pytest.importorskip("tensorflow", reason="trains a model")
    from typer.testing import CliRunner

    from segedge.cli import app

    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(synth_root), "--out", str(run), "--image-size", "32",
                                      "--epochs", "1", "--batch-size", "4", "--steps-per-epoch", "1",
                                      "--validation-steps", "1", "--run-eagerly", "--encoder-width", "0.35",
                                      "--decoder-widths", "32,16,16,8"])
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert saved["encoder_width"] == 0.35 and saved["decoder_widths"] == [32, 16, 16, 8]
    assert "encoder mobilenet_v2 0.35 (none), decoder 32/16/16/8" in result.output


@pytest.mark.parametrize(("model", "targets", "expected"), [
    ({"encoder_width": 0.35}, "int8,onnx",
     {"encoder": "mobilenet_v2", "encoder_width": 0.35, "decoder_widths": [176, 88, 48, 24]}),
    ({"encoder": "mobilenet_v3_small"}, "int8,onnx-int8",
     {"encoder": "mobilenet_v3_small", "encoder_width": 1.0, "decoder_widths": [176, 88, 48, 24]}),
], ids=["v2-0.35", "v3-small"])
def test_the_model_size_reaches_the_manifest_and_every_artifacts_metadata(synth_root, tmp_path, model, targets,
                                                                           expected):
    """A tiny export of a width-0.35 run and of a MobileNetV3 Small run: the manifest's source_model and each
    file's embedded document say which model it is."""
    pytest.importorskip("tensorflow", reason="exports a model")
    from fixtures_export import write_run

    from segedge.contract import metadata
    from segedge.contract.manifest import load_manifest
    from segedge.contract.targets import parse_targets
    from segedge.export.bundle import export_bundle
    from segedge.train.model import build_unet
    from segedge.util import fileio

    run = write_run(synth_root, tmp_path / "run", build_unet(64, 21, **model))
    config = json.loads((run / "config.json").read_text())
    fileio.write_json(run / "config.json", {**config, **model})
    bundle = tmp_path / "bundle"
    export_bundle(run, bundle, parse_targets(targets), calib=2, eval_count=2)
    manifest = load_manifest(bundle)
    assert {k: manifest.source_model[k] for k in expected} == expected
    for info in manifest.artifacts.values():
        assert metadata.read_artifact(Path(bundle) / info.file)["model"] == expected


def test_mobilenet_v3_is_recorded_with_its_own_widths_and_decoder(tmp_path):
    config = make_config(tmp_path / "d", tmp_path / "r", encoder="mobilenet_v3_small")
    assert config.encoder_width == 1.0 and config.decoder_widths == (176, 88, 48, 24)  # V2 0.35's decoder
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.encoder == "mobilenet_v3_small" and again.decoder_widths == (176, 88, 48, 24)
    large = make_config(tmp_path / "d", tmp_path / "r", encoder="mobilenet_v3_large", encoder_width=0.75)
    assert large.decoder_widths == (384, 192, 96, 48)
    assert model_description(large.to_dict()) == {
        "encoder": "mobilenet_v3_large", "encoder_width": 0.75, "decoder_widths": [384, 192, 96, 48]}
    with pytest.raises(ConfigError) as caught:  # Keras has V3 ImageNet weights at 0.75 and 1.0 only
        make_config(tmp_path / "d", tmp_path / "r", encoder="mobilenet_v3_small", encoder_width=0.35)
    assert "--encoder-width" in caught.value.message and "0.75|1" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path / "d", tmp_path / "r", encoder="mobilenet_v4")
    assert "--encoder 'mobilenet_v4'" in caught.value.message and "mobilenet_v3_large" in caught.value.message


def test_mobilenet_v3_weight_files_are_keras_names_with_keras_pinned_md5(monkeypatch):
    monkeypatch.delenv("SEGEDGE_WEIGHTS_URL", raising=False)  # the suite points downloads at 127.0.0.1
    from segedge.train.model import V3_NO_TOP_MD5, _weights_checksum, imagenet_weights_file, imagenet_weights_url

    name = imagenet_weights_file(1.0, "mobilenet_v3_small")
    assert name == "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    assert imagenet_weights_url(0.75, "mobilenet_v3_large").endswith(
        "/mobilenet_v3/weights_mobilenet_v3_large_224_0.75_float_no_top_v2.h5")
    checksum = _weights_checksum(name, 1.0, "mobilenet_v3_small")
    assert checksum.algorithm == "md5" and checksum.hexdigest == V3_NO_TOP_MD5[("mobilenet_v3_small", 1.0)]


@pytest.mark.parametrize("encoder", ["mobilenet_v3_small", "mobilenet_v3_large"])
def test_mobilenet_v3_unet_takes_skips_at_every_stride(encoder):
    pytest.importorskip("tensorflow", reason="builds a Keras model")
    import keras

    from segedge.train.model import build_unet

    size = 64
    model = build_unet((size, 2 * size), 5, encoder=encoder)
    assert model.output.shape[1:] == (size, 2 * size, 5)
    # each decoder stage joins the up-sampled features with the encoder's at the same stride
    joins = [layer for layer in model.layers if isinstance(layer, keras.layers.Concatenate)]
    assert [size // layer.output.shape[1] for layer in joins] == [16, 8, 4, 2]
    decoder = [layer.filters for layer in model.layers
               if isinstance(layer, keras.layers.Conv2DTranspose) and layer.name != "logits"]
    assert tuple(decoder) == scaled_decoder_widths(1.0, encoder)
    assert not any(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)  # [-1, 1] in, as V2
