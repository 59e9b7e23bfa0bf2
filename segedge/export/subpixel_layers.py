"""The layers and weights that replace one transposed convolution (see ``segedge.export.subpixel``).

The tap mapping, per spatial axis (TF's "same" transposed convolution with
k=3, s=2 is the gradient of a forward convolution padded 0 before / 1 after):

    out[2m]     = x[m] . W[0] + x[m-1] . W[2]
    out[2m + 1] = x[m] . W[1]

so with the input zero-padded by one row/column *before* and a 2-tap valid
convolution ``y[m] = xp[m] . K[0] + xp[m+1] . K[1] = x[m-1] . K[0] + x[m] . K[1]``:

    even phase: K[0] = W[2], K[1] = W[0]
    odd phase:  K[0] = 0,    K[1] = W[1]

In 2-D the four phases (dy, dx) become 4*Cout output channels ordered
``(dy * 2 + dx) * Cout + c``, which is exactly what ``depth_to_space(block 2)``
(TF's DCR order, TFLite DEPTH_TO_SPACE, ONNX DepthToSpace mode DCR) expects.
``tests/test_subpixel.py`` checks all of this numerically.
"""

from __future__ import annotations

import keras
import numpy as np

from segedge.export.subpixel_graph import Plan


@keras.saving.register_keras_serializable(package="segedge")
class DepthToSpace(keras.layers.Layer):
    """NHWC depth-to-space (pixel shuffle), TF's DCR channel order."""

    def __init__(self, block_size: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return keras.ops.depth_to_space(inputs, self.block_size, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        b = self.block_size
        return (n, None if h is None else h * b, None if w is None else w * b, c // (b * b))

    def get_config(self) -> dict:
        return {**super().get_config(), "block_size": self.block_size}


def subpixel_kernels(kernel: np.ndarray) -> np.ndarray:
    """Conv2DTranspose kernel (3, 3, Cout, Cin) -> Conv2D kernel (2, 2, Cin, 4*Cout), phase-major channels."""
    kernel = np.asarray(kernel)
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"expected a 3x3 transposed-convolution kernel, got shape {kernel.shape}")
    _, _, cout, cin = kernel.shape
    # taps[phase] = (source tap for K[0], source tap for K[1]); None means a zero tap.
    taps = {0: (2, 0), 1: (None, 1)}
    out = np.zeros((2, 2, cin, 4 * cout), dtype=kernel.dtype)
    for dy in (0, 1):
        for dx in (0, 1):
            phase = dy * 2 + dx
            for ky, sy in enumerate(taps[dy]):
                for kx, sx in enumerate(taps[dx]):
                    if sy is None or sx is None:
                        continue
                    out[ky, kx, :, phase * cout : (phase + 1) * cout] = kernel[sy, sx].T
    return out


def _phase_kernels(dense: np.ndarray, cout: int) -> list[np.ndarray]:
    """Split the dense 2x2 kernel into the four phases' non-zero taps (2x2, 2x1, 1x2, 1x1)."""
    parts = []
    for dy in (0, 1):
        for dx in (0, 1):
            k = dense[:, :, :, (dy * 2 + dx) * cout : (dy * 2 + dx + 1) * cout]
            parts.append(k[(0 if dy == 0 else 1):, (0 if dx == 0 else 1):])
    return parts


def _folded_weights(plan: Plan) -> tuple[np.ndarray, np.ndarray | None]:
    """Transposed-conv kernel (3, 3, Cout, Cin) and bias (Cout,), BatchNormalization folded, float64."""
    tc = plan.layer
    kernel = np.asarray(keras.ops.convert_to_numpy(tc.kernel), dtype=np.float64)
    cout = kernel.shape[2]
    bias = np.asarray(keras.ops.convert_to_numpy(tc.bias), dtype=np.float64) if tc.use_bias else None
    if plan.batchnorm is not None:
        bn = plan.batchnorm

        def value(var, default):
            return default if var is None else np.asarray(keras.ops.convert_to_numpy(var), dtype=np.float64)

        gamma = value(bn.gamma if bn.scale else None, np.ones(cout))
        beta = value(bn.beta if bn.center else None, np.zeros(cout))
        mean, var = value(bn.moving_mean, None), value(bn.moving_variance, None)
        scale = gamma / np.sqrt(var + bn.epsilon)
        kernel = kernel * scale[None, None, :, None]
        bias = beta + ((bias if bias is not None else 0.0) - mean) * scale
    return kernel, bias


@keras.saving.register_keras_serializable(package="segedge")
class KeepChannels(keras.layers.Layer):
    """The first ``count`` channels of an NHWC tensor: drops the zero channels ``emit`` padded on."""

    def __init__(self, count: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.count = int(count)

    def call(self, inputs):
        return inputs[..., : self.count]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.count)

    def get_config(self) -> dict:
        return {**super().get_config(), "count": self.count}


def _pad_channels(kernel: np.ndarray, bias: np.ndarray | None, multiple: int):
    """Zero output channels appended up to a multiple of ``multiple`` (kernel (3, 3, Cout, Cin), bias (Cout,))."""
    extra = -kernel.shape[2] % multiple
    kernel = np.concatenate([kernel, np.zeros((3, 3, extra, kernel.shape[3]), kernel.dtype)], axis=2)
    if bias is not None:
        bias = np.concatenate([bias, np.zeros(extra, bias.dtype)])
    return kernel, bias


def emit(plan: Plan, x, variant: str, channel_multiple: int | None = None):
    """Build pad/conv/depth-to-space for one plan on tensor ``x``; the output tensor.

    ``channel_multiple``: give the convolutions a multiple of this many output channels
    (zero filters appended) and keep the real ones after the shuffle (``KeepChannels``).
    """
    tc = plan.layer
    name, dtype = tc.name, tc.dtype_policy
    kernel, bias = _folded_weights(plan)
    cout = kernel.shape[2]
    if channel_multiple and cout % channel_multiple and variant != "transpose":
        kernel, bias = _pad_channels(kernel, bias, channel_multiple)
        plan_name = f"{name}_padded"
        y = _emit(plan, x, variant, kernel, bias, plan_name, dtype)
        return KeepChannels(cout, name=name, dtype=dtype)(y)
    return _emit(plan, x, variant, kernel, bias, name, dtype)


def _emit(plan: Plan, x, variant: str, kernel: np.ndarray, bias: np.ndarray | None, name: str, dtype):
    use_bias = bias is not None
    if variant == "transpose":
        conv = keras.layers.Conv2DTranspose(kernel.shape[2], 3, strides=2, padding="same", use_bias=use_bias,
                                            activation=plan.activation, name=name, dtype=dtype)
        y = conv(x)
        conv.set_weights([kernel.astype(np.float32)] + ([bias.astype(np.float32)] if use_bias else []))
        return y
    dense = subpixel_kernels(kernel)
    bias = None if bias is None else np.tile(bias, 4)
    cout = dense.shape[-1] // 4
    if variant == "rows":
        return _rows(x, dense, bias, plan.activation, name, dtype)
    if variant == "dense":
        padded = keras.layers.ZeroPadding2D(((1, 0), (1, 0)), name=f"{name}_subpixel_pad", dtype=dtype)(x)
        conv = keras.layers.Conv2D(4 * cout, 2, padding="valid", use_bias=use_bias, activation=plan.activation,
                                   name=f"{name}_subpixel_conv", dtype=dtype)
        y = conv(padded)
        conv.set_weights([dense.astype(np.float32)] + ([bias.astype(np.float32)] if use_bias else []))
    else:
        pads = {(0, 0): ((1, 0), (1, 0)), (0, 1): ((1, 0), (0, 0)), (1, 0): ((0, 0), (1, 0)), (1, 1): None}
        branches = []
        for (dy, dx), kernel in zip(pads, _phase_kernels(dense, cout), strict=True):
            tag = f"{name}_subpixel_p{dy}{dx}"
            inp = x
            if pads[(dy, dx)] is not None:
                inp = keras.layers.ZeroPadding2D(pads[(dy, dx)], name=f"{tag}_pad", dtype=dtype)(x)
            conv = keras.layers.Conv2D(cout, kernel.shape[:2], padding="valid", use_bias=use_bias,
                                       activation=plan.activation, name=f"{tag}_conv", dtype=dtype)
            branches.append(conv(inp))
            phase = dy * 2 + dx
            conv.set_weights([kernel.astype(np.float32)]
                             + ([bias[phase * cout : (phase + 1) * cout].astype(np.float32)] if use_bias else []))
        if variant == "interleave":
            return _interleave(branches, name, dtype)
        y = keras.layers.Concatenate(axis=-1, name=f"{name}_subpixel_concat", dtype=dtype)(branches)
    return DepthToSpace(2, name=name, dtype=dtype)(y)


def _interleave(phases: list, name: str, dtype):
    """Pixel shuffle of the four phases by NHWC concatenations and free reshapes.

    Rows of phase (a, b) land at (2i + a, 2j + b): concatenating (a, 0) and (a, 1) on
    channels and reshaping to (H, 2W, C) interleaves columns; concatenating the two row
    sets on width and reshaping to (2H, 2W, C) interleaves rows.
    """
    _, height, width, channels = phases[0].shape
    rows = []
    for a in (0, 1):
        pair = keras.layers.Concatenate(axis=-1, name=f"{name}_subpixel_cols{a}", dtype=dtype)(phases[2 * a: 2 * a + 2])
        rows.append(keras.layers.Reshape((height, 2 * width, channels), name=f"{name}_subpixel_row{a}",
                                         dtype=dtype)(pair))
    both = keras.layers.Concatenate(axis=2, name=f"{name}_subpixel_rows", dtype=dtype)(rows)
    return keras.layers.Reshape((2 * height, 2 * width, channels), name=name, dtype=dtype)(both)


def _rows(x, dense: np.ndarray, bias: np.ndarray | None, activation: str, name: str, dtype):
    """Two convolutions, one per output row parity, then one concatenation on width.

    Row parity ``dy`` holds phases (dy, 0) and (dy, 1), whose output channels are adjacent in
    the dense kernel's phase-major order, so one convolution with 2*Cout channels computes
    both and a free NHWC reshape (H, W, 2C) -> (H, 2W, C) interleaves its columns. Rows
    dy = 0 need the 2x2 taps (input padded top and left), rows dy = 1 only the 1x2 taps
    (padded left). 12/9 of the multiply-adds of "phases" (the zero taps of the odd columns),
    but one wide concatenation instead of three, and twice the output channels per
    convolution (the 21-class logits layer runs at a fraction of the int8 GEMM's speed
    with 21).
    """
    _, height, width, _ = x.shape
    cout = dense.shape[-1] // 4
    rows = []
    for dy, (kernel, pads) in enumerate(((dense[:, :, :, : 2 * cout], ((1, 0), (1, 0))),
                                         (dense[1:, :, :, 2 * cout :], ((0, 0), (1, 0))))):
        tag = f"{name}_subpixel_r{dy}"
        padded = keras.layers.ZeroPadding2D(pads, name=f"{tag}_pad", dtype=dtype)(x)
        conv = keras.layers.Conv2D(2 * cout, kernel.shape[:2], padding="valid", use_bias=bias is not None,
                                   activation=activation, name=f"{tag}_conv", dtype=dtype)
        y = conv(padded)
        conv.set_weights([kernel.astype(np.float32)]
                         + ([bias[2 * dy * cout : 2 * (dy + 1) * cout].astype(np.float32)] if bias is not None else []))
        rows.append(keras.layers.Reshape((height, 2 * width, cout), name=f"{tag}_cols", dtype=dtype)(y))
    both = keras.layers.Concatenate(axis=2, name=f"{name}_subpixel_rows", dtype=dtype)(rows)
    return keras.layers.Reshape((2 * height, 2 * width, cout), name=name, dtype=dtype)(both)
