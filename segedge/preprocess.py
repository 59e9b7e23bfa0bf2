"""The one pre-processing implementation: Keras reference, calibration and edge all call it.

The exporter writes a ``PreprocessSpec`` into the bundle manifest and the edge
reads it back from there, so the Keras, TFLite and ONNX models are fed the very
same numbers. numpy + PIL only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
from PIL import Image

from segedge.errors import ConfigError


class Scaling(str, Enum):
    """How uint8 pixels become model input: ``x * scale + offset``."""

    unit = "unit"            # [0, 1]: the seed write-up
    mobilenet = "mobilenet"  # [-1, 1]: what MobileNetV2's ImageNet weights expect


SCALING_CONSTANTS: dict[str, tuple[float, float]] = {
    Scaling.unit.value: (1.0 / 255.0, 0.0),
    Scaling.mobilenet.value: (1.0 / 127.5, -1.0),
}


class InputContract(str, Enum):
    """What a model's input tensor holds (issue 16).

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

    def __post_init__(self) -> None:
        if self.scaling not in SCALING_CONSTANTS:
            raise ConfigError(f"unknown input scaling {self.scaling!r}; choose one of {sorted(SCALING_CONSTANTS)}")
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
    def scale(self) -> float:
        return SCALING_CONSTANTS[self.scaling][0]

    @property
    def offset(self) -> float:
        return SCALING_CONSTANTS[self.scaling][1]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["formula"] = ("x = pixel_uint8 * scale + offset, computed inside the model: feed pixels 0..255"
                           if self.pixels_in else "x = pixel_uint8 * scale + offset")
        data["scale"] = self.scale
        data["offset"] = self.offset
        data["interpolation"] = "bilinear (PIL)"
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        return cls(
            height=int(data["height"]), width=int(data["width"]), scaling=data["scaling"],
            resize=data.get("resize", "stretch"), layout=data.get("layout", "NHWC"),
            input=data.get("input", InputContract.scaled.value),
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
    canvas = np.zeros((spec.height, spec.width, 3), dtype=np.uint8)
    left, top = (spec.width - w) // 2, (spec.height - h) // 2
    canvas[top : top + h, left : left + w] = np.asarray(image.resize((w, h), Image.BILINEAR), dtype=np.uint8)
    return canvas, Placement(left, top, w, h)


def scale_pixels(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 HxWx3 (or NxHxWx3) -> float32 model input values."""
    return pixels.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)


def restore_mask(mask: np.ndarray, placement: Placement, size: tuple[int, int]) -> np.ndarray:
    """Model-size class mask -> original (width, height), nearest neighbour."""
    crop = mask[placement.top : placement.top + placement.height, placement.left : placement.left + placement.width]
    return np.asarray(Image.fromarray(crop.astype(np.uint8), "L").resize(size, Image.NEAREST), dtype=np.uint8)


def resize_mask(mask: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Ground-truth mask -> model size (nearest), void kept; stretch only, as in training."""
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8), "L")
    return np.asarray(image.resize((spec.width, spec.height), Image.NEAREST), dtype=np.uint8)
