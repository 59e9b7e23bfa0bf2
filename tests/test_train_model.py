"""The U-Net: shapes, the seed's named encoder layers, freezing, size errors."""

from __future__ import annotations

import pytest

from segedge.util.errors import ConfigError

pytest.importorskip("tensorflow")

from segedge.train.model import SKIP_LAYERS, build_unet  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def unet22():
    return build_unet(SIZE, 22)


def test_output_is_full_resolution_logits(unet22):
    assert tuple(unet22.inputs[0].shape) == (None, SIZE, SIZE, 3)
    assert tuple(unet22.outputs[0].shape) == (None, SIZE, SIZE, 22)
    assert unet22.get_layer("logits").activation.__name__ == "linear"


def test_named_encoder_layers_sit_at_strides_2_to_32(unet22):
    strides = [SIZE // unet22.get_layer(name).output.shape[1] for name in SKIP_LAYERS]
    assert SKIP_LAYERS == ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
                           "block_13_expand_relu", "block_16_project")
    assert strides == [2, 4, 8, 16, 32]


@pytest.mark.parametrize("size", [100, 16, 0])
def test_size_not_divisible_by_32_is_a_config_error(size):
    with pytest.raises(ConfigError, match=str(size)):
        build_unet(size, 21)


def test_frozen_encoder_leaves_only_the_decoder_trainable():
    model = build_unet(SIZE, 21, None, freeze_encoder=True)
    assert not model.get_layer("block_16_project").trainable
    assert not model.get_layer("Conv1").trainable
    assert model.get_layer("logits").trainable
    trainable = {v.path.split("/")[0] for v in model.trainable_variables}
    assert "logits" in trainable and not any(name.startswith("block_") for name in trainable)


def test_random_init_uses_fast_batchnorm_statistics(unet22):
    """From random weights BN's moving statistics must catch up within a short run (see model.py)."""
    import keras

    momenta = {layer.momentum for layer in unet22.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.5}
