"""Pixel input: every exported graph takes the decoded pixels 0..255 and scales them itself.

Why: an int8 model fed ``x = p / 127.5 - 1`` cannot receive the 256 pixel levels
exactly. An int8 grid must hold 0.0 exactly, and the levels sit half-way between
its codes (``np.round`` merged 17 of them, pixels 254 and 255 among them).
Scaling inside the graph is not enough either. Measured (TF 2.21, uint8 input,
scale 1): a ``Rescaling`` layer in front became MUL + ADD ops, whose int8 outputs
held only 171 distinct values for the 256 input levels.

So the scaling goes into the first convolution's weights. When the input feeds
exactly one ``Conv2D`` (MobileNetV2's ``Conv1``), that layer becomes
``PixelConv2D``. It pads the pixels with the value the scaling maps to 0
(127.5 for ``mobilenet``, 0 for ``unit``), so its border sees what the original
zero padding of ``x`` gave. Then it runs a 'valid' convolution with
``W' = W * scale`` and ``b' = b + offset * sum(W)``. In exact arithmetic this is the
same function. The int8 model's first op (after PAD) is then a convolution on the
exact uint8 pixels. In int8 the pad value 127.5 is stored as 127 (the PAD constant is int8 -1
at scale 1, zero point -128; read back from a converted file), which touches
only the last row and column. Any other model gets a ``Rescaling`` layer in front:
its input is still exact, but its first op rounds.

Per-channel scalings (``meanstd``: ``x_c = (p_c - mean_c) / std_c``) fold the same way,
channel by channel: ``W'[..., c, :] = W[..., c, :] * scale_c``, ``b' = b + sum offset_c * W[..., c, :]``,
and each channel is padded with its own ``mean_c`` (three PADs and a CONCATENATION on
the exact pixels; one PAD when the channels agree).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

STEM_NOTE = "pixel input 0..255: scaling folded into {name} (pixels padded with {value}, 'valid' conv)"
RESCALE_NOTE = "pixel input 0..255: Rescaling({scale}, {offset}) in front (the first op rounds in int8)"
Channels = float | tuple[float, ...] | list[float]


def _values(value: Channels) -> tuple[float, ...]:
    return tuple(float(v) for v in value) if isinstance(value, (tuple, list)) else (float(value),)


def _uniform(value: Channels) -> float | tuple[float, ...]:
    """One number when every channel has the same value (the common case), else the per-channel tuple."""
    values = _values(value)
    return values[0] if len(set(values)) == 1 else values


def _show(value: Channels, digits: int = 6) -> str:
    value = _uniform(tuple(v + 0.0 for v in _values(value)))  # + 0.0: -0.0 (unit's pad value) prints as 0
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:.{digits}g}" for v in value) + ")"
    return f"{value:.{digits}g}"


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) along one axis; the extra pixel goes after."""
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pixel_conv_class():
    import keras

    class PixelConv2D(keras.layers.Conv2D):
        """A 'valid' Conv2D after a constant pad: the first layer of a pixel-input export graph."""

        def __init__(self, pads=((0, 0), (0, 0)), pad_value: float | list[float] = 0.0, **kwargs) -> None:
            super().__init__(**kwargs)
            self.pads = tuple(tuple(int(v) for v in pair) for pair in pads)
            uniform = _uniform(pad_value)
            self.pad_value = list(uniform) if isinstance(uniform, tuple) else uniform

        def _padded(self, shape):
            (top, bottom), (left, right) = self.pads
            grow = [None if d is None else d + extra for d, extra in zip(shape[1:3], (top + bottom, left + right),
                                                                            strict=True)]
            return (shape[0], *grow, shape[3])

        def build(self, input_shape) -> None:
            super().build(self._padded(input_shape))

        def compute_output_shape(self, input_shape):
            return super().compute_output_shape(self._padded(input_shape))

        def call(self, inputs):
            (top, bottom), (left, right) = self.pads
            widths = [[0, 0], [top, bottom], [left, right], [0, 0]]
            if not isinstance(self.pad_value, list):
                return super().call(keras.ops.pad(inputs, widths, constant_values=self.pad_value))
            channels = [keras.ops.pad(inputs[..., c : c + 1], widths, constant_values=value)
                        for c, value in enumerate(self.pad_value)]
            return super().call(keras.ops.concatenate(channels, axis=-1))

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "pads": self.pads, "pad_value": self.pad_value}

    return PixelConv2D


def _stem_conv(model):
    """The single Conv2D the model input feeds, or None (then the Rescaling fallback is used)."""
    import keras

    source = model.inputs[0]
    consumers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for node in getattr(layer, "_inbound_nodes", []):
            if any(tensor is source for tensor in node.input_tensors):
                consumers.append((layer, node))
    if len(consumers) != 1:
        return None
    layer, _ = consumers[0]
    if type(layer) is not keras.layers.Conv2D or len(layer._inbound_nodes) != 1:
        return None
    if layer.data_format != "channels_last" or layer.groups != 1 or layer.padding not in ("same", "valid"):
        return None
    return layer


def fold_scaling(kernel: np.ndarray, bias: np.ndarray | None, scale: Channels,
                 offset: Channels) -> tuple[np.ndarray, ...]:
    """Weights of ``conv(p * scale + offset)`` as a conv on ``p``: (kernel * scale, bias + offset . kernel).

    ``scale``/``offset``: one number or one per input channel (the kernel's axis 2).
    """
    wide = kernel.astype(np.float64)
    channels = wide.shape[2]
    scales = np.broadcast_to(np.asarray(_values(scale), np.float64), (channels,))
    offsets = np.broadcast_to(np.asarray(_values(offset), np.float64), (channels,))
    shift = np.einsum("hwio,i->o", wide, offsets)
    folded_bias = (0.0 if bias is None else bias.astype(np.float64)) + shift
    return (wide * scales[None, None, :, None]).astype(kernel.dtype), np.asarray(folded_bias, dtype=kernel.dtype)


def _with_stem(model, conv, scale: Channels, offset: Channels):
    import keras

    height, width = (int(v) for v in model.inputs[0].shape[1:3])
    if conv.padding == "same":
        pads = (same_pads(height, conv.kernel_size[0], conv.strides[0], conv.dilation_rate[0]),
                same_pads(width, conv.kernel_size[1], conv.strides[1], conv.dilation_rate[1]))
    else:
        pads = ((0, 0), (0, 0))
    pad_value = _uniform(tuple(-o / s for s, o in zip(*_channel_pairs(scale, offset), strict=True)))
    config = {**conv.get_config(), "padding": "valid", "use_bias": True}
    pixel_conv = _pixel_conv_class()

    def clone(layer):
        if layer is conv:
            return pixel_conv(pads=pads, pad_value=pad_value, **config)
        return layer.__class__.from_config(layer.get_config())

    source = model.inputs[0]
    fresh = keras.Input(batch_shape=tuple(source.shape), dtype="float32", name=source.name.split(":")[0])
    structure = [fresh] if isinstance(model.input, (list, tuple)) else fresh
    copy = keras.models.clone_model(model, input_tensors=structure, clone_function=clone)
    for layer in copy.layers:
        if not layer.weights:
            continue
        original = model.get_layer(layer.name)
        if original is conv:
            weights = conv.get_weights()
            layer.set_weights(list(fold_scaling(weights[0], weights[1] if conv.use_bias else None, scale, offset)))
        else:
            layer.set_weights(original.get_weights())
    return copy, STEM_NOTE.format(name=conv.name, value=_show(pad_value, 8))


def _channel_pairs(scale: Channels, offset: Channels) -> tuple[tuple[float, ...], tuple[float, ...]]:
    scales, offsets = _values(scale), _values(offset)
    count = max(len(scales), len(offsets))
    return tuple(np.broadcast_to(scales, (count,))), tuple(np.broadcast_to(offsets, (count,)))


def _with_rescaling(model, scale: Channels, offset: Channels):
    import keras

    source = model.inputs[0]
    fresh = keras.Input(batch_shape=tuple(source.shape), dtype="float32", name=source.name.split(":")[0])
    uniform_scale, uniform_offset = _uniform(scale), _uniform(offset)
    if isinstance(uniform_scale, tuple) or isinstance(uniform_offset, tuple):
        scales, offsets = _channel_pairs(scale, offset)  # per channel: broadcast over the last (channel) axis
        scaled = keras.layers.Rescaling(np.asarray(scales, np.float32), np.asarray(offsets, np.float32),
                                        name="pixel_scaling")(fresh)
    else:
        scaled = keras.layers.Rescaling(uniform_scale, uniform_offset, name="pixel_scaling")(fresh)
    return keras.Model(fresh, model(scaled, training=False), name=f"{model.name}_pixels"), \
        RESCALE_NOTE.format(scale=_show(scale), offset=_show(offset))


def pixel_input_model(model, scale: Channels, offset: Channels):
    """(model on pixels 0..255, a note for the manifest): the first conv absorbs the scaling where it can.

    ``scale``/``offset``: one number, or one per channel (R, G, B) for ``meanstd``.
    """
    conv = _stem_conv(model)
    if conv is not None:
        try:
            return _with_stem(model, conv, scale, offset)
        except (TypeError, ValueError, AttributeError, KeyError):
            pass  # a layer that cannot be cloned from its config: keep the exact-input fallback
    return _with_rescaling(model, scale, offset)
