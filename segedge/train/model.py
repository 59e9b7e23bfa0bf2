"""The seed's U-Net: MobileNetV2 encoder, pix2pix up-sampling decoder.

Skip layers are data (``SKIP_LAYERS``), the decoder widths too, so export and
tests read the same table. TensorFlow is imported here and only here in train.
"""

from __future__ import annotations

import os
from pathlib import Path

from segedge.errors import ConfigError, ModelError

SKIP_LAYERS: tuple[str, ...] = (
    "block_1_expand_relu",   # 1/2
    "block_3_expand_relu",   # 1/4
    "block_6_expand_relu",   # 1/8
    "block_13_expand_relu",  # 1/16
    "block_16_project",      # 1/32, the bottleneck
)
DECODER_FILTERS: tuple[int, ...] = (512, 256, 128, 64)
IMAGENET_WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def keras_cache_weights() -> Path:
    """Where Keras keeps a downloaded no-top MobileNetV2 (honours KERAS_HOME)."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / IMAGENET_WEIGHTS_FILE


def resolve_encoder_weights(choice: str) -> str | None:
    """'none' -> None; 'imagenet' -> Keras' cached file or a clear offline error; PATH -> PATH."""
    if choice in ("none", "", None):
        return None
    if choice == "imagenet":
        cached = keras_cache_weights()
        if cached.is_file():
            return str(cached)
        raise ConfigError(
            f"--encoder-weights imagenet needs the file {cached}, which is not there, and segedge "
            "never downloads at run time. Copy a no-top MobileNetV2 .h5 there, or pass it directly: "
            f"--encoder-weights /path/to/{IMAGENET_WEIGHTS_FILE}"
        )
    path = Path(choice).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: encoder weights file not found; pass imagenet, none or a local .h5 path")
    return str(path)


def build_unet(image_size: int = 224, num_classes: int = 21, encoder_weights: str | None = None,
               freeze_encoder: bool = False):
    """A Keras U-Net with logits out at full resolution (``image_size`` divisible by 32)."""
    import keras

    if image_size < 32 or image_size % 32:
        raise ConfigError(f"--image-size must be a multiple of 32 (>= 32), got {image_size}")
    if num_classes < 2:
        raise ConfigError(f"the model needs at least 2 classes, got {num_classes}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    try:
        base = keras.applications.MobileNetV2(
            input_tensor=inputs, include_top=False, weights=encoder_weights
        )
    except (ValueError, OSError) as exc:
        raise ModelError(f"{encoder_weights}: cannot load MobileNetV2 encoder weights ({exc})") from exc
    if freeze_encoder:
        for layer in base.layers:
            layer.trainable = False
    *skips, x = (base.get_layer(name).output for name in SKIP_LAYERS)
    for filters, skip in zip(DECODER_FILTERS, reversed(skips), strict=True):
        x = keras.layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", use_bias=False,
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
        )(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Concatenate()([x, skip])
    logits = keras.layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same", name="logits")(x)
    return keras.Model(inputs, logits, name="unet_mobilenetv2")
