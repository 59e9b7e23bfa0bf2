"""The seed's U-Net: MobileNetV2 encoder, pix2pix up-sampling decoder.

Skip layers are data (``SKIP_LAYERS``), the decoder widths too, so export and
tests read the same table. TensorFlow is imported here and only here in train.
"""

from __future__ import annotations

import os
import shutil
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
# Where keras.applications.MobileNetV2(weights="imagenet") fetches it (keras/src/applications/
# mobilenet_v2.py BASE_WEIGHT_PATH); SEGEDGE_WEIGHTS_URL replaces the folder (a mirror, or tests).
IMAGENET_WEIGHTS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
WEIGHTS_URL_ENV = "SEGEDGE_WEIGHTS_URL"
# Keras pins no hash for this file (its get_file call passes no file_hash), and we know of no
# published one, so none is invented here: the download is checked against the md5 the storage
# server publishes with the object (x-goog-hash) and must be an HDF5 file. Set this to a
# Checksum to pin one.
IMAGENET_WEIGHTS_CHECKSUM = None
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# MobileNetV2's BatchNormalization keeps 99.9 % of its moving statistics each step: right for
# fine-tuning ImageNet statistics, far too slow from random weights, where the weights (and so
# every layer's activation statistics) change fast early on and a stale estimate in one layer
# shifts the inputs of the 50 after it. Inference mode (validation, export) then predicts
# background everywhere while training-mode accuracy is high. Measured on 200 synthetic images
# at 96 px, batch 16, 8 steps/epoch: momentum 0.999 (Keras' own) val mIoU stuck at the
# all-background 0.14 for 6 epochs (train mIoU 0.93); 0.9 stuck for 4 epochs, then 0.31, 0.84;
# 0.5 gave 0.42, 0.67, 0.77, 0.91 in epochs 2-5. A batch's statistics are over ~10^5 pixels per
# channel, so averaging over the last few batches is still a stable estimate.
RANDOM_INIT_BN_MOMENTUM = 0.5


def keras_cache_weights() -> Path:
    """Where Keras keeps a downloaded no-top MobileNetV2 (honours KERAS_HOME)."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / IMAGENET_WEIGHTS_FILE


def imagenet_weights_url() -> str:
    base = os.environ.get(WEIGHTS_URL_ENV) or IMAGENET_WEIGHTS_BASE_URL
    return base.rstrip("/") + "/" + IMAGENET_WEIGHTS_FILE


def download_imagenet_weights(target: Path) -> Path:
    """Keras' no-top MobileNetV2 weights -> ``target`` (Keras' cache), verified, atomically.

    The transfer resumes from ``.part`` in segedge's download cache (never in Keras' folder);
    ``target`` appears only once the file checked out, so Keras never sees half a file.
    """
    from segedge import fileio
    from segedge.data.download import DownloadError, cache_dir, download

    url = imagenet_weights_url()
    hint = f"it belongs in {target}: copy it there by hand, or pass a local copy with --encoder-weights PATH"
    try:
        staged = download(url, cache_dir() / IMAGENET_WEIGHTS_FILE, checksum=IMAGENET_WEIGHTS_CHECKSUM,
                          hint=hint, description="MobileNetV2 ImageNet weights")
    except DownloadError as exc:
        raise DownloadError(f"--encoder-weights imagenet: {exc.message}") from None
    with open(staged, "rb") as handle:
        head = handle.read(len(HDF5_SIGNATURE))
    if head != HDF5_SIGNATURE:
        staged.unlink()
        raise DownloadError(f"--encoder-weights imagenet: {url} did not send an HDF5 (.h5) file; {hint}")
    with fileio.atomic_path(target) as tmp:
        shutil.copyfile(staged, tmp)
    staged.unlink()
    return target


def resolve_encoder_weights(choice: str) -> str | None:
    """'none' -> None; 'imagenet' -> Keras' cached file, downloaded there once; PATH -> PATH."""
    if choice in ("none", "", None):
        return None
    if choice == "imagenet":
        cached = keras_cache_weights()
        if cached.is_file():
            return str(cached)
        return str(download_imagenet_weights(cached))
    path = Path(choice).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: encoder weights file not found; pass imagenet, none or a local .h5 path")
    return str(path)


def build_unet(image_size: int | tuple[int, int] = 224, num_classes: int = 21, encoder_weights: str | None = None,
               freeze_encoder: bool = False, bn_momentum: float | None = None):
    """A Keras U-Net with logits out at full resolution (``image_size``: N or (height, width), multiples of 32).

    ``bn_momentum`` sets every BatchNormalization's moving-average momentum (training only;
    inference is unaffected). None: ``RANDOM_INIT_BN_MOMENTUM`` when the encoder starts from
    random weights, the layers' own values (0.999 encoder, 0.99 decoder) otherwise.
    """
    import keras

    height, width = image_size if isinstance(image_size, tuple) else (image_size, image_size)
    if min(height, width) < 32 or height % 32 or width % 32:
        raise ConfigError(f"--image-size must be a multiple of 32 (>= 32) on each side, got {height}x{width}")
    if num_classes < 2:
        raise ConfigError(f"the model needs at least 2 classes, got {num_classes}")
    inputs = keras.Input(shape=(height, width, 3), name="image")
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
    model = keras.Model(inputs, logits, name="unet_mobilenetv2")
    if bn_momentum is None and encoder_weights is None:
        bn_momentum = RANDOM_INIT_BN_MOMENTUM
    if bn_momentum is not None:
        if not 0.0 <= bn_momentum < 1.0:
            raise ConfigError(f"--bn-momentum must be in [0, 1), got {bn_momentum}")
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    return model
