"""Pixel input: every exported graph takes the decoded pixels 0..255 and scales them itself (issue 16).

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
exact uint8 pixels. In int8 the pad value 127.5 is stored as 128, which touches
only the last row and column. Any other model gets a ``Rescaling`` layer in front:
its input is still exact, but its first op rounds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

STEM_NOTE = "pixel input 0..255: scaling folded into {name} (pixels padded with {value:g}, 'valid' conv)"
RESCALE_NOTE = "pixel input 0..255: Rescaling({scale:.6g}, {offset:g}) in front (the first op rounds in int8)"


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

        def __init__(self, pads=((0, 0), (0, 0)), pad_value: float = 0.0, **kwargs) -> None:
            super().__init__(**kwargs)
            self.pads = tuple(tuple(int(v) for v in pair) for pair in pads)
            self.pad_value = float(pad_value)

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
            padded = keras.ops.pad(inputs, [[0, 0], [top, bottom], [left, right], [0, 0]],
                                   constant_values=self.pad_value)
            return super().call(padded)

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


def fold_scaling(kernel: np.ndarray, bias: np.ndarray | None, scale: float, offset: float) -> tuple[np.ndarray, ...]:
    """Weights of ``conv(p * scale + offset)`` as a conv on ``p``: (kernel * scale, bias + offset * sum(kernel))."""
    wide = kernel.astype(np.float64)
    folded_bias = (0.0 if bias is None else bias.astype(np.float64)) + offset * wide.sum(axis=(0, 1, 2))
    return (wide * scale).astype(kernel.dtype), np.asarray(folded_bias, dtype=kernel.dtype)


def _with_stem(model, conv, scale: float, offset: float):
    import keras

    height, width = (int(v) for v in model.inputs[0].shape[1:3])
    if conv.padding == "same":
        pads = (same_pads(height, conv.kernel_size[0], conv.strides[0], conv.dilation_rate[0]),
                same_pads(width, conv.kernel_size[1], conv.strides[1], conv.dilation_rate[1]))
    else:
        pads = ((0, 0), (0, 0))
    pad_value = -offset / scale
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
    return copy, STEM_NOTE.format(name=conv.name, value=pad_value)


def _with_rescaling(model, scale: float, offset: float):
    import keras

    source = model.inputs[0]
    fresh = keras.Input(batch_shape=tuple(source.shape), dtype="float32", name=source.name.split(":")[0])
    scaled = keras.layers.Rescaling(scale, offset, name="pixel_scaling")(fresh)
    return keras.Model(fresh, model(scaled, training=False), name=f"{model.name}_pixels"), \
        RESCALE_NOTE.format(scale=scale, offset=offset)


def pixel_input_model(model, scale: float, offset: float):
    """(model on pixels 0..255, a note for the manifest): the first conv absorbs the scaling where it can."""
    conv = _stem_conv(model)
    if conv is not None:
        try:
            return _with_stem(model, conv, scale, offset)
        except (TypeError, ValueError, AttributeError, KeyError):
            pass  # a layer that cannot be cloned from its config: keep the exact-input fallback
    return _with_rescaling(model, scale, offset)
