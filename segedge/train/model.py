"""The seed's U-Net: MobileNetV2 encoder (or MobileNetV3 Small/Large), pix2pix up-sampling decoder.

Skip layers are data (``SKIP_LAYERS``), the decoder widths too (``segedge.train.widths``), so
export and tests read the same table. MobileNetV3's layers have no stable names (Keras numbers
its activations per session), so its skips are found from the graph: the last layer at each of
1/2, 1/4, 1/8 and 1/16 of the input, which is where V2's named skips sit too (the expansion
before each stride-2 block). TensorFlow is imported here and only here in train.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from segedge.train.widths import (
    DEFAULT_ENCODER,
    DEFAULT_ENCODER_WIDTH,
    check_encoder,
    check_encoder_width,
    parse_decoder_widths,
    scaled_decoder_widths,
)
from segedge.util.errors import ConfigError, ModelError

SKIP_LAYERS: tuple[str, ...] = (
    "block_1_expand_relu",   # 1/2
    "block_3_expand_relu",   # 1/4
    "block_6_expand_relu",   # 1/8
    "block_13_expand_relu",  # 1/16
    "block_16_project",      # 1/32, the bottleneck
)
IMAGENET_WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"  # width 1.0
# Where keras.applications.MobileNetV2(weights="imagenet") fetches it (keras/src/applications/
# mobilenet_v2.py BASE_WEIGHT_PATH); SEGEDGE_WEIGHTS_URL replaces the folder (a mirror, or tests).
IMAGENET_WEIGHTS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
# keras/src/applications/mobilenet_v3.py BASE_WEIGHT_PATH; Keras pins these files' md5 (WEIGHTS_HASHES,
# the no-top column), and so does segedge: a download that does not match is refused.
V3_WEIGHTS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/"
V3_NO_TOP_MD5 = {
    ("mobilenet_v3_small", 0.75): "ebdb5cc8e0b497cd13a7c275d475c819",
    ("mobilenet_v3_small", 1.0): "d3e8ec802a04aa4fc771ee12a9a9b836",
    ("mobilenet_v3_large", 0.75): "40af19a13ebea4e2ee0c676887f69a2e",
    ("mobilenet_v3_large", 1.0): "07fb09a5933dd0c8eaafa16978110389",
}
WEIGHTS_URL_ENV = "SEGEDGE_WEIGHTS_URL"
# Keras pins no hash for these files (its get_file call passes no file_hash), at any width, and we
# know of no published one, so none is invented here: the download is checked against the md5 the
# storage server publishes with the object (x-goog-hash) and must be an HDF5 file. Set this to a
# Checksum to pin one (it then applies to width 1.0 only: one pinned hash cannot cover four files).
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


def imagenet_weights_file(width: float = DEFAULT_ENCODER_WIDTH, encoder: str = DEFAULT_ENCODER) -> str:
    """Keras' name for the no-top file at ``width`` (alpha) and 224 rows: the encoder's weights do not depend
    on the input size, and the 224 files are the ones trained at full resolution."""
    width = float(check_encoder_width(width, encoder))
    if encoder == DEFAULT_ENCODER:
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{width}_224_no_top.h5"
    return f"weights_mobilenet_v3_{encoder.rsplit('_', 1)[1]}_224_{width}_float_no_top_v2.h5"


def keras_cache_weights(width: float = DEFAULT_ENCODER_WIDTH, encoder: str = DEFAULT_ENCODER) -> Path:
    """Where Keras keeps a downloaded no-top encoder (honours KERAS_HOME)."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / imagenet_weights_file(width, encoder)


def imagenet_weights_url(width: float = DEFAULT_ENCODER_WIDTH, encoder: str = DEFAULT_ENCODER) -> str:
    default = IMAGENET_WEIGHTS_BASE_URL if encoder == DEFAULT_ENCODER else V3_WEIGHTS_BASE_URL
    base = os.environ.get(WEIGHTS_URL_ENV) or default
    return base.rstrip("/") + "/" + imagenet_weights_file(width, encoder)


def _weights_checksum(name: str, width: float, encoder: str):
    from segedge.data.download import Checksum

    if encoder != DEFAULT_ENCODER:
        return Checksum("md5", V3_NO_TOP_MD5[(encoder, float(width))])
    return IMAGENET_WEIGHTS_CHECKSUM if name == IMAGENET_WEIGHTS_FILE else None


def encoder_title(encoder: str, width: float) -> str:
    """'MobileNetV2 0.35', 'MobileNetV3 Small 1': how messages name an encoder."""
    family, *size = encoder.replace("mobilenet_", "").split("_")
    return " ".join(["MobileNet" + family.upper(), *(part.title() for part in size), f"{width:g}"])


def download_imagenet_weights(target: Path, width: float = DEFAULT_ENCODER_WIDTH,
                              encoder: str = DEFAULT_ENCODER) -> Path:
    """Keras' no-top encoder weights -> ``target`` (Keras' cache), verified, atomically.

    The transfer resumes from ``.part`` in segedge's download cache (never in Keras' folder);
    ``target`` appears only once the file checked out, so Keras never sees half a file.
    """
    from segedge.data.download import DownloadError, cache_dir, discard, download
    from segedge.util import fileio

    url, name = imagenet_weights_url(width, encoder), imagenet_weights_file(width, encoder)
    checksum = _weights_checksum(name, width, encoder)
    hint = f"it belongs in {target}: copy it there by hand, or pass a local copy with --encoder-weights PATH"
    try:
        staged = download(url, cache_dir() / name, checksum=checksum,
                          hint=hint, description=f"{encoder_title(encoder, width)} ImageNet weights")
    except DownloadError as exc:
        raise DownloadError(f"--encoder-weights imagenet: {exc.message}") from None
    with open(staged, "rb") as handle:
        head = handle.read(len(HDF5_SIGNATURE))
    if head != HDF5_SIGNATURE:
        discard(staged)  # only segedge's own download: a file the user put in the cache stays
        raise DownloadError(f"--encoder-weights imagenet: {url} did not send an HDF5 (.h5) file; {hint}")
    with fileio.atomic_path(target) as tmp:
        shutil.copyfile(staged, tmp)
    discard(staged)
    return target


def resolve_encoder_weights(choice: str, width: float = DEFAULT_ENCODER_WIDTH,
                            encoder: str = DEFAULT_ENCODER) -> str | None:
    """'none' -> None; 'imagenet' -> Keras' cached file for ``width``, downloaded there once; PATH -> PATH."""
    if choice in ("none", "", None):
        return None
    if choice == "imagenet":
        cached = keras_cache_weights(width, encoder)
        if cached.is_file():
            return str(cached)
        return str(download_imagenet_weights(cached, width, encoder))
    path = Path(choice).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: encoder weights file not found; pass imagenet, none or a local .h5 path")
    return str(path)


def stride_outputs(base, height: int) -> list:
    """The last layer output at 1/2, 1/4, 1/8, 1/16 and 1/32 of ``height`` rows, in the encoder's layer order:
    the four skips and the bottleneck."""
    last_at: dict[int, object] = {}
    for layer in base.layers:
        shape = getattr(layer.output, "shape", None)
        if shape is not None and len(shape) == 4 and shape[1] is not None:
            last_at[int(shape[1])] = layer.output
    rows = [height // 2 ** level for level in range(1, 6)]
    missing = [r for r in rows if r not in last_at]
    if missing:
        raise ModelError(f"{base.name}: no layer at {missing} rows; the encoder does not halve the input 5 times")
    return [last_at[r] for r in rows]


def build_unet(image_size: int | tuple[int, int] = 224, num_classes: int = 21, encoder_weights: str | None = None,
               freeze_encoder: bool = False, bn_momentum: float | None = None,
               encoder_width: float = DEFAULT_ENCODER_WIDTH, decoder_widths: tuple[int, ...] | None = None,
               encoder: str = DEFAULT_ENCODER):
    """A Keras U-Net with logits out at full resolution (``image_size``: N or (height, width), multiples of 32).

    ``encoder`` is one of ``segedge.train.widths.ENCODERS`` and ``encoder_width`` its alpha
    (MobileNetV2's skip layers have the same names at every width); ``decoder_widths`` the four
    up-sampling stages' filters, deepest first (None: the seed's, scaled with the encoder).

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
    encoder = check_encoder(encoder)
    alpha = check_encoder_width(encoder_width, encoder)
    decoder = parse_decoder_widths(decoder_widths) or scaled_decoder_widths(alpha, encoder)
    inputs = keras.Input(shape=(height, width, 3), name="image")
    try:
        if encoder == DEFAULT_ENCODER:
            base = keras.applications.MobileNetV2(
                input_tensor=inputs, include_top=False, weights=encoder_weights, alpha=alpha
            )
        else:  # no Rescaling layer: the model takes [-1, 1] like MobileNetV2 (export folds the scaling in)
            make = (keras.applications.MobileNetV3Small if encoder == "mobilenet_v3_small"
                    else keras.applications.MobileNetV3Large)
            base = make(input_tensor=inputs, include_top=False, weights=encoder_weights, alpha=alpha,
                        include_preprocessing=False)
    except (ValueError, OSError) as exc:
        raise ModelError(f"{encoder_weights}: cannot load {encoder_title(encoder, alpha)} encoder weights "
                         f"({exc})") from exc
    if freeze_encoder:
        for layer in base.layers:
            layer.trainable = False
    if encoder == DEFAULT_ENCODER:
        *skips, x = (base.get_layer(name).output for name in SKIP_LAYERS)
    else:
        *skips, x = stride_outputs(base, height)
    for filters, skip in zip(decoder, reversed(skips), strict=True):
        x = keras.layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", use_bias=False,
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
        )(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Concatenate()([x, skip])
    logits = keras.layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same", name="logits")(x)
    model = keras.Model(inputs, logits, name="unet_" + encoder.replace("_", ""))
    if bn_momentum is None and encoder_weights is None:
        bn_momentum = RANDOM_INIT_BN_MOMENTUM
    if bn_momentum is not None:
        if not 0.0 <= bn_momentum < 1.0:
            raise ConfigError(f"--bn-momentum must be in [0, 1), got {bn_momentum}")
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = float(bn_momentum)
    return model
