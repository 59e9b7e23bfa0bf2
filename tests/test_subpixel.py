"""The sub-pixel rewrite of the decoder's transposed convolutions is exact (segedge.export.subpixel)."""

from __future__ import annotations

import collections

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from segedge.export.subpixel import (  # noqa: E402
    VARIANTS,
    DepthToSpace,
    KeepChannels,
    count_transposed_convs,
    rewrite_transposed_convs,
    subpixel_kernels,
)

SIZE, CLASSES = 64, 21


def _randomize_batchnorm(model, rng: np.random.Generator) -> None:
    """Non-trivial inference statistics, so folding BN into the kernel is really tested."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c),
                               rng.normal(0, 0.2, c), rng.uniform(0.3, 2.0, c)])


@pytest.fixture(scope="module")
def unet():
    from segedge.train.model import build_unet

    keras.utils.set_random_seed(3)
    model = build_unet(SIZE, CLASSES, encoder_weights=None)
    _randomize_batchnorm(model, np.random.default_rng(3))
    return model


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(4).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(unet, images) -> np.ndarray:
    return unet(images, training=False).numpy()  # eager: cheaper than predict()'s tracing at this size


@pytest.fixture(scope="module")
def rewritten(unet):
    return rewrite_transposed_convs(unet)


def _run(model, images: np.ndarray) -> np.ndarray:
    """One image at a time: the rewritten model has a fixed batch of 1."""
    return np.concatenate([model(images[i : i + 1], training=False).numpy() for i in range(len(images))])


def test_tap_mapping_on_one_layer_with_bias_and_odd_shapes():
    """A lone Conv2DTranspose (bias, non-square input, relu) equals its sub-pixel form in every variant."""
    keras.utils.set_random_seed(5)
    inp = keras.Input(batch_shape=(1, 5, 7, 6))
    out = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu",
                                       bias_initializer="random_normal")(inp)
    model = keras.Model(inp, out)
    x = np.random.default_rng(5).normal(size=(1, 5, 7, 6)).astype(np.float32)
    expected = model(x).numpy()
    assert expected.shape == (1, 10, 14, 4)
    for variant in VARIANTS:
        got = rewrite_transposed_convs(model, variant=variant)(x).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=variant)


@pytest.mark.parametrize("variant", ["phases", "interleave", "rows"])
def test_padded_output_channels_are_sliced_back_exactly(variant):
    """channel_multiple=4: the 21-filter layer's convolutions get 24 outputs (3 zero filters), KeepChannels
    returns the 21 real ones, and the result equals the transposed convolution (bias, relu, odd shape)."""
    keras.utils.set_random_seed(6)
    inp = keras.Input(batch_shape=(1, 5, 7, 6))
    out = keras.layers.Conv2DTranspose(21, 3, strides=2, padding="same", activation="relu",
                                       bias_initializer="random_normal", name="logits")(inp)
    model = keras.Model(inp, out)
    x = np.random.default_rng(6).normal(size=(1, 5, 7, 6)).astype(np.float32)
    expected = model(x).numpy()
    rewritten = rewrite_transposed_convs(model, variant=variant, channel_multiple=4)
    got = rewritten(x).numpy()
    assert got.shape == expected.shape == (1, 10, 14, 21)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    convs = [layer for layer in rewritten.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.filters % 4 == 0 for layer in convs)
    assert [layer.count for layer in rewritten.layers if isinstance(layer, KeepChannels)] == [21]
    assert rewritten.layers[-1].name == "logits"  # the output keeps the layer's name
    # a layer already a multiple of 4 is left as it was
    assert not any(isinstance(layer, KeepChannels)
                   for layer in rewrite_transposed_convs(model, variant=variant, channel_multiple=3).layers)


def test_subpixel_kernel_layout():
    kernel = np.arange(3 * 3 * 2 * 1, dtype=np.float32).reshape(3, 3, 2, 1)  # (kh, kw, Cout, Cin)
    dense = subpixel_kernels(kernel)
    assert dense.shape == (2, 2, 1, 8)
    # phase (odd, odd) = channels 6..7: only tap K[1,1] = W[1,1]; the rest are zeros.
    np.testing.assert_array_equal(dense[1, 1, 0, 6:], kernel[1, 1, :, 0])
    assert not dense[0, :, :, 6:].any() and not dense[:, 0, :, 6:].any()
    # phase (even, even) = channels 0..1: K[0,0] = W[2,2], K[1,1] = W[0,0].
    np.testing.assert_array_equal(dense[0, 0, 0, :2], kernel[2, 2, :, 0])
    np.testing.assert_array_equal(dense[1, 1, 0, :2], kernel[0, 0, :, 0])


def test_rewritten_unet_is_exact(unet, rewritten, images, reference):
    assert count_transposed_convs(unet) == 5
    assert count_transposed_convs(rewritten) == 0
    assert sum(isinstance(layer, DepthToSpace) for layer in rewritten.layers) == 5
    # BN after each decoder block is folded away (the encoder's BNs stay for the converters to fold).
    n_bn = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in unet.layers)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in rewritten.layers) == n_bn - 4
    assert tuple(rewritten.input.shape) == (1, SIZE, SIZE, 3)
    assert rewritten.output_names == unet.output_names
    got = _run(rewritten, images)
    assert got.shape == reference.shape
    assert np.abs(got - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    assert (got.argmax(-1) == reference.argmax(-1)).mean() == 1.0


@pytest.mark.parametrize("variant", ["dense", "transpose", "interleave", "rows", "interleave-c4"])
def test_other_variants_are_exact(unet, images, reference, variant):
    variant, _, pad = variant.partition("-c")
    model = rewrite_transposed_convs(unet, variant=variant, batch_size=None, channel_multiple=int(pad or 0) or None)
    assert count_transposed_convs(model) == (5 if variant == "transpose" else 0)
    got = model(images, training=False).numpy()
    assert np.abs(got - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    assert (got.argmax(-1) == reference.argmax(-1)).mean() == 1.0


def test_max_filters_rewrites_only_the_narrow_layers_and_stays_exact(unet, images, reference):
    """max_filters: only the narrow layers (what TFLite int8 exported before issue 20)."""
    model = rewrite_transposed_convs(unet, max_filters=64)
    kept = sorted(layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose))
    assert kept == [128, 256, 512]  # the logits (21) and the last decoder block (64) became sub-pixel
    assert sum(isinstance(layer, DepthToSpace) for layer in model.layers) == 2
    got = _run(model, images)
    assert np.abs(got - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    assert count_transposed_convs(rewrite_transposed_convs(unet, max_filters=8)) == 5


def test_rewrite_copies_weights_and_leaves_the_original_alone(unet, rewritten, images, reference):
    original_vars = {id(v) for v in unet.weights}
    assert not original_vars & {id(v) for v in rewritten.weights}
    np.testing.assert_array_equal(unet(images, training=False).numpy(), reference)


def test_unsupported_transposed_conv_is_copied_unchanged():
    keras.utils.set_random_seed(6)
    inp = keras.Input(shape=(6, 6, 3))
    out = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same")(inp)  # kernel 4: not rewritten
    model = keras.Model(inp, out)
    new = rewrite_transposed_convs(model)
    assert count_transposed_convs(new) == 1
    x = np.random.default_rng(6).normal(size=(1, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(new(x).numpy(), model(x).numpy(), atol=1e-6)


def test_saved_rewrite_loads_in_safe_mode(tmp_path):
    """DepthToSpace is a registered layer, not a Lambda: a saved rewrite loads with safe_mode on."""
    keras.utils.set_random_seed(7)
    inp = keras.Input(batch_shape=(1, 4, 4, 8))
    x = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inp, keras.layers.ReLU()(x))
    new = rewrite_transposed_convs(model)
    path = tmp_path / "subpixel.keras"
    new.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    assert any(isinstance(layer, DepthToSpace) for layer in loaded.layers)
    x = np.random.default_rng(7).normal(size=(1, 4, 4, 8)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x, training=False).numpy(), atol=1e-5)


@pytest.mark.slow
def test_tflite_conversion_has_no_transpose_conv_and_agrees(rewritten, images, reference):
    from ai_edge_litert.interpreter import Interpreter

    spec = tf.TensorSpec(rewritten.input.shape, tf.float32, name="image")
    concrete = tf.function(lambda x: rewritten(x, training=False)).get_concrete_function(spec)
    content = tf.lite.TFLiteConverter.from_concrete_functions([concrete]).convert()
    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    ops = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
    assert "TRANSPOSE_CONV" not in ops
    assert ops["DEPTH_TO_SPACE"] == 5 and ops["CONCATENATION"] == 4 + 5  # the U-Net's skips + one per phase set
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(ops)  # fixed batch: no shape arithmetic
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert list(inp["shape_signature"]) == [1, SIZE, SIZE, 3]
    got = []
    for i in range(len(images)):
        interpreter.set_tensor(inp["index"], images[i : i + 1])
        interpreter.invoke()
        got.append(interpreter.get_tensor(out["index"]))
    got = np.concatenate(got)
    assert np.abs(got - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    assert (got.argmax(-1) == reference.argmax(-1)).mean() == 1.0
