"""Every training hyper-parameter in one frozen dataclass, and the two recipes.

``TrainConfig`` is what ``RUN/config.json`` holds (plus the derived fields the
export stage reads: ``preprocess``, ``num_outputs``). Values are checked when
the object is built, so a bad option fails before TensorFlow is even imported.
No TensorFlow here.

Recipes (``--preset``):

``seed``
    The write-up, faithfully: pooled train+val cut 2164/449/300 (proportional
    on other sizes), pixels scaled to [0, 1], void 255 relabelled as an extra
    class 21 (22 outputs, trained like any other class), the training set
    enlarged 3x with an h-flipped and a v-flipped copy of every image, batch 32,
    up to 30 epochs, Adam (Keras' default 1e-3), plain sparse categorical
    cross-entropy from logits, early stopping on ``val_loss``. The write-up
    gives no patience; we use 5: with at most 30 epochs and a 449-image
    validation set the loss is noisy from epoch to epoch, so stopping at the
    first uptick (Keras' default patience 0) would end runs on noise, while 5
    epochs (1/6 of the budget) still stops a run that has really plateaued.
    The write-up does not restore the best weights, but ``model.keras`` is
    always the best epoch's checkpoint anyway.

``default``
    What a practitioner would run: VOC's official train/val lists when present
    (otherwise the seed split), void ignored in the loss and the metrics (21
    outputs, the VOC protocol), a random horizontal flip on the fly (a vertical
    flip makes upside-down people and cats, which never occur in test data), the
    [-1, 1] scaling MobileNetV2's ImageNet weights expect, early stopping on
    ``val_miou`` (the number we report; validation loss can rise while mIoU
    still improves as the model grows over-confident) with the best weights
    restored, patience 5.

Encoder weights default to ``none`` (random: no network); ``imagenet``: Keras' no-top weights for the run's
``encoder`` and ``encoder_width`` (segedge.train.model); offline, pass a local ``.h5``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from enum import Enum
from typing import Any

from segedge.contract.labels import NUM_CLASSES
from segedge.contract.preprocess import SCALING_CONSTANTS, PreprocessSpec, ResizeMode
from segedge.data.pairs import DEFAULT_VAL_FRACTION, check_val_fraction
from segedge.train.widths import model_widths
from segedge.util.errors import ConfigError, absolute_path

CONFIG_VERSION = 1
SIZE_STEP = 32  # the encoder halves the input 5 times: each side a multiple of 32


def _nearest_sizes(value: int) -> str:
    """The valid sizes either side of ``value`` ("96 or 128"), for the error message."""
    below, above = (value // SIZE_STEP) * SIZE_STEP, -(-value // SIZE_STEP) * SIZE_STEP
    sizes = sorted({s for s in (below, above) if s >= SIZE_STEP} or {SIZE_STEP})
    return " or ".join(map(str, sizes))


def parse_image_size(value: Any) -> tuple[int, int]:
    """``224`` / ``"224"`` (square) or ``"160x224"`` (height x width) -> (height, width), each a multiple of 32."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        parts: list[Any] = list(value)
    elif isinstance(value, str):
        parts = [p.strip() for p in value.lower().replace("×", "x").split("x")]
        if len(parts) == 1:
            parts = parts * 2
    else:
        parts = [value, value]
    try:
        if any(isinstance(p, bool) or isinstance(p, float) for p in parts):
            raise ValueError
        height, width = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"--image-size {value!r} is not N or HxW (height x width, e.g. 224 or 160x224)") from None
    for side, name in ((height, "height"), (width, "width")):
        if side < SIZE_STEP or side % SIZE_STEP:
            raise ConfigError(
                f"--image-size {value}: the {name} {side} must be a multiple of {SIZE_STEP} (the encoder halves "
                f"it 5 times); nearest valid: {_nearest_sizes(side)}")
    return height, width


def normalize_image_size(value: Any) -> int | str:
    """The ``config.json`` spelling: N when square (as before), "HxW" otherwise."""
    height, width = parse_image_size(value)
    return height if height == width else f"{height}x{width}"


class TrainScaling(str, Enum):
    """The scalings training offers (export also takes meanstd, for a model segedge did not train)."""

    unit = "unit"
    mobilenet = "mobilenet"


class Preset(str, Enum):
    default = "default"
    seed = "seed"


class SplitChoice(str, Enum):
    auto = "auto"          # official lists when train.txt and val.txt exist, else the seed split
    official = "official"
    seed = "seed"
    train_aug = "train_aug"  # VOC train + SBD (10,582 ids; 'segedge data fetch sbd'), validated on VOC val


class VoidHandling(str, Enum):
    ignore = "ignore"  # 255 stays 255, the loss and metrics skip it (VOC protocol)
    klass = "class"    # 255 becomes class 21, an extra output (the seed write-up)


class Augment(str, Enum):
    hflip = "hflip"              # a random horizontal flip per image and epoch
    flip_copies = "flip-copies"  # every training image plus an h- and a v-flipped copy (3x)
    none = "none"


class Monitor(str, Enum):
    val_loss = "val_loss"
    val_miou = "val_miou"


class CacheMode(str, Enum):
    auto = "auto"      # decoded, resized arrays in memory when they fit the budget below
    memory = "memory"
    none = "none"      # decode from disk every epoch


MONITOR_MODE = {Monitor.val_loss.value: "min", Monitor.val_miou.value: "max"}

PRESETS: dict[str, dict[str, Any]] = {
    Preset.seed.value: {
        "split": SplitChoice.seed.value,
        "scaling": "unit",
        "void_handling": VoidHandling.klass.value,
        "augment": Augment.flip_copies.value,
        "batch_size": 32,
        "epochs": 30,
        "learning_rate": 1e-3,
        "patience": 5,
        "monitor": Monitor.val_loss.value,
        "restore_best_weights": False,
    },
    Preset.default.value: {
        "split": SplitChoice.auto.value,
        "scaling": "mobilenet",
        "void_handling": VoidHandling.ignore.value,
        "augment": Augment.hflip.value,
        "batch_size": 32,
        "epochs": 30,
        "learning_rate": 1e-3,
        "patience": 5,
        "monitor": Monitor.val_miou.value,
        "restore_best_weights": True,
    },
}


def _choice(value: Any, enum: type[Enum], what: str) -> str:
    value = value.value if isinstance(value, Enum) else value
    allowed = [member.value for member in enum]
    if value not in allowed:
        raise ConfigError(f"{what} {value!r} is not one of {allowed}")
    return value


def _positive(value: Any, what: str, number: bool = False, allow_zero: bool = False) -> None:
    kinds = (int, float) if number else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{what} must be {'a number' if number else 'an integer'}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{what} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """One training run's every knob; ``RUN/config.json`` is ``to_dict()``."""

    data_root: str
    out: str
    preset: str = Preset.default.value
    split: str = SplitChoice.auto.value
    image_size: int | str = 224  # N (square) or "HxW" (height x width); each side a multiple of 32
    resize: str = ResizeMode.stretch.value  # letterbox: keep the aspect, pad with the pixel that scales to 0
    batch_size: int = 32
    epochs: int = 30
    learning_rate: float = 1e-3
    patience: int = 5
    monitor: str = Monitor.val_miou.value
    restore_best_weights: bool = True
    seed: int = 0
    encoder_weights: str = "none"
    encoder: str = "mobilenet_v2"  # segedge.train.widths.ENCODERS; the seed's is MobileNetV2
    encoder_width: float = 1.0  # the encoder's alpha (segedge.train.widths); the seed's is 1.0
    decoder_widths: tuple[int, ...] | None = None  # None: the seed's 512/256/128/64 scaled by encoder_width
    freeze_encoder: bool | None = None
    bn_momentum: float | None = None  # None: 0.5 from random weights, the layers' own otherwise (model.py)
    scaling: str = "mobilenet"
    void_handling: str = VoidHandling.ignore.value
    augment: str = Augment.hflip.value
    cache: str = CacheMode.auto.value
    cache_budget_mb: int = 2048
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    # XLA on a 2-core CPU: 113 s first step (45 s without), slower later ones: opt-in; a GPU may gain.
    jit_compile: bool = False
    # Eager steps skip the ~20-50 s graph tracing; slower per step, so only for tiny runs (tests, debugging).
    run_eagerly: bool = False
    # Several workers (segedge.train.distribute): a collective that waits longer than this fails the run.
    worker_timeout_s: int = 300
    # Filled in by train(): how many workers and replicas in sync ran it (--batch-size is the global batch).
    num_workers: int = 1
    num_replicas: int = 1
    # Filled in by train() from the dataset's classes (classes.json, else VOC's 21): the model head's size.
    num_classes: int = NUM_CLASSES
    # A pairs dataset without split files: the share of images (by stem hash) that validates.
    val_fraction: float = DEFAULT_VAL_FRACTION

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "preset", _choice(self.preset, Preset, "--preset"))
        set_(self, "split", _choice(self.split, SplitChoice, "--split"))
        set_(self, "monitor", _choice(self.monitor, Monitor, "--monitor"))
        set_(self, "void_handling", _choice(self.void_handling, VoidHandling, "--void"))
        set_(self, "augment", _choice(self.augment, Augment, "--augment"))
        set_(self, "cache", _choice(self.cache, CacheMode, "--cache"))
        scaling = self.scaling.value if isinstance(self.scaling, Enum) else self.scaling
        if scaling not in SCALING_CONSTANTS:
            raise ConfigError(f"--scaling {scaling!r} is not one of {sorted(SCALING_CONSTANTS)}")
        set_(self, "scaling", scaling)
        if not str(self.data_root):
            raise ConfigError("the dataset folder (DATA) is empty; pass a VOC2012 folder")
        if not str(self.out):
            raise ConfigError("--out is empty; pass the run folder to write")
        set_(self, "image_size", normalize_image_size(self.image_size))
        set_(self, "resize", _choice(self.resize, ResizeMode, "--resize"))
        _positive(self.batch_size, "--batch-size")
        _positive(self.epochs, "--epochs")
        _positive(self.learning_rate, "--learning-rate", number=True)
        _positive(self.patience, "--patience", allow_zero=True)
        _positive(self.cache_budget_mb, "cache budget (MB)", allow_zero=True)
        _positive(self.seed, "--seed", allow_zero=True)
        _positive(self.worker_timeout_s, "--worker-timeout")
        for name in ("steps_per_epoch", "validation_steps"):
            value = getattr(self, name)
            if value is not None:
                _positive(value, f"--{name.replace('_', '-')}")
        if not isinstance(self.encoder_weights, str) or not self.encoder_weights:
            raise ConfigError(f"--encoder-weights must be imagenet, none or a .h5 path, got {self.encoder_weights!r}")
        if self.bn_momentum is not None and (
            isinstance(self.bn_momentum, bool) or not isinstance(self.bn_momentum, (int, float))
            or not 0.0 <= self.bn_momentum < 1.0
        ):
            raise ConfigError(f"--bn-momentum must be a number in [0, 1), got {self.bn_momentum!r}")
        count = self.num_classes
        if isinstance(count, bool) or not isinstance(count, int) or not 2 <= count <= 255:
            raise ConfigError(f"num_classes must be an integer 2-255 (the dataset's classes), got {self.num_classes!r}")
        set_(self, "val_fraction", check_val_fraction(self.val_fraction))
        widths = model_widths(self.encoder_width, self.decoder_widths, self.encoder)  # checks the encoder too
        set_(self, "encoder_width", widths[0])
        set_(self, "decoder_widths", widths[1])
        if self.freeze_encoder is not None and not isinstance(self.freeze_encoder, bool):
            raise ConfigError(f"freeze_encoder must be true, false or null (auto), got {self.freeze_encoder!r}")

    # -- derived values -------------------------------------------------------------------------

    @property
    def num_outputs(self) -> int:
        """The dataset's classes (VOC: 21), plus one for void when void is trained as a class."""
        return self.num_classes + (1 if self.void_handling == VoidHandling.klass.value else 0)

    @property
    def pretrained(self) -> bool:
        return self.encoder_weights != "none"

    @property
    def freeze(self) -> bool:
        """Auto (None) freezes the encoder only when it starts from pretrained weights."""
        return self.pretrained if self.freeze_encoder is None else self.freeze_encoder

    @property
    def height(self) -> int:
        return parse_image_size(self.image_size)[0]

    @property
    def width(self) -> int:
        return parse_image_size(self.image_size)[1]

    @property
    def monitor_mode(self) -> str:
        return MONITOR_MODE[self.monitor]

    def preprocess_spec(self) -> PreprocessSpec:
        return PreprocessSpec(height=self.height, width=self.width, scaling=self.scaling, resize=self.resize)

    # -- serialisation --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` body: every field plus what later stages need without re-deriving."""
        data = dataclasses.asdict(self)
        data.update(
            config_version=CONFIG_VERSION, decoder_widths=list(self.decoder_widths),  # JSON has no tuples
            split_kind=self.split,
            num_outputs=self.num_outputs,
            freeze_encoder_effective=self.freeze,
            monitor_mode=self.monitor_mode,
            preprocess=self.preprocess_spec().to_dict(),
            learning_rate_rule="kept",  # --learning-rate as given, not scaled with num_replicas
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; derived keys are ignored, unknown keys refused by name."""
        names = {f.name for f in dataclasses.fields(cls)}
        derived = {"config_version", "split_kind", "num_outputs", "freeze_encoder_effective",
                   "monitor_mode", "preprocess", "learning_rate_rule"}
        unknown = sorted(set(data) - names - derived)
        if unknown:
            raise ConfigError(f"config has unknown keys {unknown}; was it written by a newer segedge?")
        missing = sorted(n for n in ("data_root", "out") if n not in data)
        if missing:
            raise ConfigError(f"config is missing {missing}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def make_config(data_root: str | os.PathLike[str], out: str | os.PathLike[str], preset: str = "default",
                **overrides: Any) -> TrainConfig:
    """The preset's values, then every override that is not None (CLI options default to None)."""
    preset = _choice(preset, Preset, "--preset")
    values: dict[str, Any] = dict(PRESETS[preset])
    values.update({k: (v.value if isinstance(v, Enum) else v) for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown training options {unknown}")
    return TrainConfig(
        data_root=str(absolute_path(data_root)),
        out=str(absolute_path(out)),
        preset=preset,
        **values,
    )
