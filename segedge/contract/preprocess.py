"""The one pre-processing implementation: Keras reference, calibration and edge all call it.

The exporter writes a ``PreprocessSpec`` into the bundle manifest and the edge
reads it back from there, so the Keras, TFLite and ONNX models are fed the very
same numbers. numpy + PIL only.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
from PIL import Image

from segedge.util.errors import ConfigError


class Scaling(str, Enum):
    """How uint8 pixels become model input: ``x * scale + offset`` (per channel for ``meanstd``)."""

    unit = "unit"            # [0, 1]: the seed write-up
    mobilenet = "mobilenet"  # [-1, 1]: what MobileNetV2's ImageNet weights expect
    meanstd = "meanstd"      # (pixel - mean_c) / std_c, mean and std in pixel units 0..255 (torchvision x 255)


SCALING_CONSTANTS: dict[str, tuple[float, float]] = {
    Scaling.unit.value: (1.0 / 255.0, 0.0),
    Scaling.mobilenet.value: (1.0 / 127.5, -1.0),
}
SCALINGS = (*SCALING_CONSTANTS, Scaling.meanstd.value)
# ImageNet mean/std as torchvision and timm document them (0..1), times 255: the usual --mean/--std.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _triple(values, what: str) -> tuple[float, float, float] | None:
    """None, one number (all channels) or three numbers (R, G, B) -> a float triple."""
    if values is None:
        return None
    items = [values] if isinstance(values, (int, float)) else list(values)
    try:
        triple = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be numbers (R,G,B), got {values!r}") from None
    if len(triple) == 1:
        triple = triple * 3
    if len(triple) != 3 or not all(np.isfinite(triple)):
        raise ConfigError(f"{what} must be one or three finite numbers (R,G,B), got {values!r}")
    return triple  # type: ignore[return-value]


class InputContract(str, Enum):
    """What a model's input tensor holds: the pixels themselves, or values scaled from them.

    ``scaled``: ``x = pixel * scale + offset`` computed on the device (the Keras model as trained).
    ``pixels``: the decoded pixel values 0..255, the scaling folded into the graph (every artifact
    segedge exports), so the device feeds uint8 pixels with no float round trip and an int8 model's
    input quantization is the identity on 0..255 (scale 1).
    """

    scaled = "scaled"
    pixels = "pixels"


class ResizeMode(str, Enum):
    stretch = "stretch"
    letterbox = "letterbox"


@dataclass(frozen=True)
class PreprocessSpec:
    height: int
    width: int
    scaling: str = Scaling.mobilenet.value
    resize: str = ResizeMode.stretch.value
    layout: str = "NHWC"
    input: str = InputContract.scaled.value
    mean: tuple[float, float, float] | None = None  # meanstd only: per-channel mean in pixel units 0..255
    std: tuple[float, float, float] | None = None   # meanstd only: per-channel std in pixel units 0..255

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown input scaling {self.scaling!r}; choose one of {sorted(SCALINGS)}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ConfigError(f"input {name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "mean", _triple(self.mean, "--mean"))
        object.__setattr__(self, "std", _triple(self.std, "--std"))
        if self.scaling == Scaling.meanstd.value:
            if self.mean is None or self.std is None:
                raise ConfigError("--scaling meanstd needs --mean R,G,B and --std R,G,B (pixel units 0..255, "
                                  f"e.g. ImageNet --mean {','.join(map(str, IMAGENET_MEAN))} "
                                  f"--std {','.join(map(str, IMAGENET_STD))})")
            if min(self.std) <= 0:
                raise ConfigError(f"--std must be positive in every channel, got {list(self.std)}")
        elif self.mean is not None or self.std is not None:
            raise ConfigError(f"--mean/--std apply to --scaling meanstd only, not {self.scaling!r}")
        if self.resize not in {m.value for m in ResizeMode}:
            raise ConfigError(f"unknown resize mode {self.resize!r}; choose stretch or letterbox")
        if self.layout not in ("NHWC", "NCHW"):
            raise ConfigError(f"unknown layout {self.layout!r}; choose NHWC or NCHW")
        if self.input not in {c.value for c in InputContract}:
            raise ConfigError(f"unknown input contract {self.input!r}; choose scaled or pixels")

    @property
    def pixels_in(self) -> bool:
        """True when the model takes pixels 0..255 and scales them itself."""
        return self.input == InputContract.pixels.value

    @property
    def per_channel(self) -> bool:
        """True when the channels have different scale/offset (``meanstd``)."""
        return self.scaling == Scaling.meanstd.value

    @property
    def channel_scale(self) -> tuple[float, float, float]:
        """Per-channel ``scale_c`` (R, G, B): 1/std_c for meanstd, the one constant otherwise."""
        if self.per_channel:
            return tuple(1.0 / s for s in self.std)  # type: ignore[union-attr,return-value]
        return (SCALING_CONSTANTS[self.scaling][0],) * 3

    @property
    def channel_offset(self) -> tuple[float, float, float]:
        """Per-channel ``offset_c`` (R, G, B): -mean_c/std_c for meanstd, the one constant otherwise."""
        if self.per_channel:
            return tuple(-m / s for m, s in zip(self.mean, self.std, strict=True))  # type: ignore[arg-type,return-value]
        return (SCALING_CONSTANTS[self.scaling][1],) * 3

    @property
    def scale(self) -> float | list[float]:
        """The scale: one number, or three (R, G, B) for meanstd (as the manifest writes it)."""
        return list(self.channel_scale) if self.per_channel else self.channel_scale[0]

    @property
    def offset(self) -> float | list[float]:
        return list(self.channel_offset) if self.per_channel else self.channel_offset[0]

    @property
    def zero_pixel(self) -> tuple[float, float, float]:
        """The pixel value each channel scales to 0 (``-offset_c / scale_c``): padding that means "nothing"."""
        return tuple(-o / s for o, s in zip(self.channel_offset, self.channel_scale, strict=True))  # type: ignore

    @property
    def letterbox_fill(self) -> tuple[int, int, int]:
        """``zero_pixel`` rounded to uint8: what a letterbox pads the image with (128 for mobilenet)."""
        return tuple(int(np.clip(np.floor(v + 0.5), 0, 255)) for v in self.zero_pixel)  # type: ignore

    def to_dict(self) -> dict:
        data = asdict(self)
        if not self.per_channel:
            data.pop("mean")
            data.pop("std")
        else:
            data["mean"], data["std"] = list(self.mean), list(self.std)  # type: ignore[arg-type]
        data["formula"] = ("x = pixel_uint8 * scale + offset, computed inside the model: feed pixels 0..255"
                           if self.pixels_in else "x = pixel_uint8 * scale + offset")
        if self.per_channel:
            data["formula"] += " (per channel R,G,B: scale = 1/std, offset = -mean/std)"
        data["scale"] = self.scale
        data["offset"] = self.offset
        data["interpolation"] = "bilinear (PIL)"
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        return cls(
            height=int(data["height"]), width=int(data["width"]), scaling=data["scaling"],
            resize=data.get("resize", "stretch"), layout=data.get("layout", "NHWC"),
            input=data.get("input", InputContract.scaled.value), mean=data.get("mean"), std=data.get("std"),
        )


@dataclass(frozen=True)
class Placement:
    """Where the resized image sits inside the model input (for undoing a letterbox)."""

    left: int
    top: int
    width: int
    height: int


def resize_uint8(image: Image.Image, spec: PreprocessSpec) -> tuple[np.ndarray, Placement]:
    """RGB image -> HxWx3 uint8 at the model size, and where the content landed."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if spec.resize == ResizeMode.stretch.value:
        resized = image.resize((spec.width, spec.height), Image.BILINEAR)
        return np.asarray(resized, dtype=np.uint8), Placement(0, 0, spec.width, spec.height)
    ratio = min(spec.width / image.width, spec.height / image.height)
    w = max(1, int(round(image.width * ratio)))
    h = max(1, int(round(image.height * ratio)))
    canvas = np.empty((spec.height, spec.width, 3), dtype=np.uint8)
    canvas[:] = spec.letterbox_fill  # the pixel that scales to 0, so the pad reads as "no signal"
    left, top = (spec.width - w) // 2, (spec.height - h) // 2
    canvas[top : top + h, left : left + w] = np.asarray(image.resize((w, h), Image.BILINEAR), dtype=np.uint8)
    return canvas, Placement(left, top, w, h)


def scale_pixels(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 HxWx3 (or NxHxWx3) -> float32 model input values (per channel: the last axis is R, G, B)."""
    scale = np.asarray(spec.channel_scale, np.float32)
    offset = np.asarray(spec.channel_offset, np.float32)
    if not spec.per_channel:
        scale, offset = scale[0], offset[0]  # scalar: the very numbers earlier segedge computed
    return pixels.astype(np.float32) * scale + offset


def unscale_pixels(values: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """The inverse of ``scale_pixels``, rounded to the pixel grid and clipped to 0..255 (float32)."""
    scale = np.asarray(spec.channel_scale, np.float32)
    offset = np.asarray(spec.channel_offset, np.float32)
    if not spec.per_channel:
        scale, offset = scale[0], offset[0]
    return np.clip(np.rint((np.asarray(values, np.float32) - offset) / scale), 0, 255)


def restore_mask(mask: np.ndarray, placement: Placement, size: tuple[int, int]) -> np.ndarray:
    """Model-size class mask -> original (width, height), nearest neighbour."""
    crop = mask[placement.top : placement.top + placement.height, placement.left : placement.left + placement.width]
    return np.asarray(Image.fromarray(crop.astype(np.uint8), "L").resize(size, Image.NEAREST), dtype=np.uint8)


def resize_mask(mask: np.ndarray, spec: PreprocessSpec, void: int = 255) -> np.ndarray:
    """Ground-truth mask -> model size (nearest), void kept; a letterbox pads with ``void`` (never scored).

    The content lands where ``resize_uint8`` puts the image's (same rounding), so mask and pixels line up.
    """
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), "L")
    if spec.resize == ResizeMode.stretch.value:
        return np.asarray(image.resize((spec.width, spec.height), Image.NEAREST), dtype=np.uint8)
    ratio = min(spec.width / image.width, spec.height / image.height)
    w = max(1, int(round(image.width * ratio)))
    h = max(1, int(round(image.height * ratio)))
    canvas = np.full((spec.height, spec.width), void, dtype=np.uint8)
    left, top = (spec.width - w) // 2, (spec.height - h) // 2
    canvas[top : top + h, left : left + w] = np.asarray(image.resize((w, h), Image.NEAREST), dtype=np.uint8)
    return canvas
