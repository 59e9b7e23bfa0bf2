"""Exact export-time rewrite of stride-2 transposed convolutions into sub-pixel convolutions.

A ``Conv2DTranspose(kernel 3, stride 2, padding "same")`` is slow on the edge
runtimes (XNNPACK fp32 TRANSPOSE_CONV, onnxruntime ConvTranspose, which also
keeps a following BatchNormalization unfused). It equals a regular convolution
followed by depth-to-space, with the weights copied, so the rewrite changes
speed and nothing else.

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

Variants:

* ``"phases"`` (default): four convolutions, one per output phase, holding
  exactly the transposed convolution's 9 taps (2x2, 2x1, 1x2 and 1x1 kernels,
  each on the input zero-padded where its taps need it), then Concatenate +
  DepthToSpace. The same multiply-adds as the transposed convolution, on
  every runtime's regular-convolution fast path.
* ``"interleave"``: the same four convolutions, shuffled without DepthToSpace:
  concatenating phases (a, 0) and (a, 1) on channels and reshaping to
  (H, 2W, C) interleaves columns, concatenating the two row sets on width and
  reshaping to (2H, 2W, C) interleaves rows. In NHWC both reshapes are free;
  onnxruntime (NCHW inside) then needs only 4-D layout transposes instead of
  its slow 6-D DepthToSpace, and is 15-20 % faster (export uses it for ONNX).
* ``"dense"``: ZeroPadding2D + one Conv2D(2x2, 4*Cout) + DepthToSpace. One op,
  but 16/9 of the multiply-adds (the zero taps) and 16/9 of the weight bytes;
  measured slower than "phases" in every runtime here (benchmarks/README.md).
* ``"transpose"``: no sub-pixel rewrite, the Conv2DTranspose stays; only the
  BatchNormalization / activation fusions below (the control that separates the
  two effects in benchmarks).

Inference-only fusions (on by default, both exact to float rounding): a
BatchNormalization that is the transposed convolution's only consumer is folded
into the new convolution's kernel and bias, and a plain ReLU / ReLU6 after it
becomes the convolution's activation (an elementwise op commutes with
depth-to-space), so TFLite and onnxruntime see Conv+bias+ReLU, a pattern both fuse.

The result is a functional Keras model on a fixed-batch input (batch 1 by
default: a dynamic batch makes the TFLite converter emit shape arithmetic that
falls out of XNNPACK). Only built-in layers plus :class:`DepthToSpace`, a
serializable four-line layer over ``keras.ops.depth_to_space`` that the TFLite
converter lowers to DEPTH_TO_SPACE and tf2onnx to DepthToSpace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

VARIANTS = ("phases", "dense", "transpose", "interleave")
_FUSABLE_ACTIVATIONS = ("linear", "relu", "relu6")


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


@dataclass
class _Plan:
    """What happens to one Conv2DTranspose and the layers it swallows."""

    layer: keras.layers.Conv2DTranspose
    batchnorm: keras.layers.BatchNormalization | None = None
    activation_layer: keras.layers.Layer | None = None
    activation: str = "linear"
    absorbed: list = field(default_factory=list)


def is_rewritable(layer) -> bool:
    """A Conv2DTranspose this module can replace exactly (3x3, stride 2, same, NHWC, no dilation)."""
    if not isinstance(layer, keras.layers.Conv2DTranspose):
        return False
    cfg = layer.get_config()
    return (
        tuple(cfg["kernel_size"]) == (3, 3)
        and tuple(cfg["strides"]) == (2, 2)
        and cfg["padding"] == "same"
        and cfg.get("output_padding") is None
        and tuple(cfg.get("dilation_rate", (1, 1))) == (1, 1)
        and cfg.get("data_format", "channels_last") == "channels_last"
        and _activation_name(layer.activation) in _FUSABLE_ACTIVATIONS
    )


def _activation_name(fn) -> str:
    return keras.activations.serialize(fn) if not isinstance(fn, str) else fn


def _activation_of(layer) -> str | None:
    """'relu' / 'relu6' if ``layer`` is exactly that elementwise activation, else None."""
    if isinstance(layer, keras.layers.ReLU):
        cfg = layer.get_config()
        if cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
            return None
        max_value = cfg.get("max_value")
        if max_value is None:
            return "relu"
        return "relu6" if float(max_value) == 6.0 else None
    if isinstance(layer, keras.layers.Activation):
        name = _activation_name(layer.activation)
        return name if name in ("relu", "relu6") else None
    return None


def _graph(model: keras.Model):
    """Nodes in execution order and, per tensor id, the operations that consume it."""
    nodes = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        nodes.extend(model._nodes_by_depth[depth])
    consumers: dict[int, list] = {}
    for node in nodes:
        if node.operation is None or node.is_input:
            continue
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    return nodes, consumers


def _sole_consumer(tensor, consumers, outputs: set[int]):
    nodes = consumers.get(id(tensor), [])
    if len(nodes) != 1 or id(tensor) in outputs:
        return None
    node = nodes[0]
    if len(node.input_tensors) != 1 or len(node.operation._inbound_nodes) != 1:
        return None  # shared layers and multi-input consumers stay as they are
    return node


def _plan(model: keras.Model, fold_batchnorm: bool, fuse_activation: bool, max_filters: int | None = None):
    nodes, consumers = _graph(model)
    outputs = {id(t) for t in model.outputs}
    plans: dict[int, _Plan] = {}
    for node in nodes:
        layer = node.operation
        if not is_rewritable(layer) or len(layer._inbound_nodes) != 1:
            continue
        if max_filters is not None and layer.filters > max_filters:
            continue
        plan = _Plan(layer, activation=_activation_name(layer.activation))
        tail = node.outputs[0]
        bn_node = _sole_consumer(tail, consumers, outputs) if fold_batchnorm else None
        if (
            bn_node is not None
            and plan.activation == "linear"
            and isinstance(bn_node.operation, keras.layers.BatchNormalization)
            and bn_node.operation.axis in (-1, 3, [-1], [3])
        ):
            plan.batchnorm = bn_node.operation
            plan.absorbed.append(bn_node)
            tail = bn_node.outputs[0]
        if fuse_activation and plan.activation == "linear":
            act_node = _sole_consumer(tail, consumers, outputs)
            if act_node is not None and _activation_of(act_node.operation):
                plan.activation_layer = act_node.operation
                plan.activation = _activation_of(act_node.operation)
                plan.absorbed.append(act_node)
        plans[id(layer)] = plan
    return nodes, plans


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


def _folded_weights(plan: _Plan) -> tuple[np.ndarray, np.ndarray | None]:
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


def _emit(plan: _Plan, x, variant: str):
    """Build pad/conv/depth-to-space for one plan on tensor ``x``; the output tensor."""
    tc = plan.layer
    name, dtype = tc.name, tc.dtype_policy
    kernel, bias = _folded_weights(plan)
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


def _copy_layer(layer, cache: dict):
    """A fresh layer with the same config; weights are copied after it is built."""
    if id(layer) not in cache:
        cache[id(layer)] = layer.__class__.from_config(layer.get_config())
    return cache[id(layer)]


def rewrite_transposed_convs(model: keras.Model, *, batch_size: int | None = 1, variant: str = "phases",
                             fold_batchnorm: bool = True, fuse_activation: bool = True,
                             max_filters: int | None = None) -> keras.Model:
    """An inference copy of ``model`` with every 3x3/stride-2/'same' Conv2DTranspose made sub-pixel.

    Weights are copied, never shared with ``model``. ``batch_size`` fixes the
    input's batch dimension (None keeps it dynamic). Transposed convolutions
    of other shapes are copied unchanged. The returned model is for
    inference: folded BatchNormalizations no longer train.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise TypeError("rewrite_transposed_convs needs a functional keras.Model")
    if any(isinstance(layer, keras.Model) for layer in model.layers):
        raise TypeError("nested models are not supported; flatten the model first")
    nodes, plans = _plan(model, fold_batchnorm, fuse_activation, max_filters)
    absorbed = {id(node): plan for plan in plans.values() for node in plan.absorbed}

    inputs = [
        keras.Input(batch_shape=(batch_size, *x.shape[1:]), dtype=x.dtype, name=x.name) for x in model.inputs
    ]
    tensors = {id(x): y for x, y in zip(model.inputs, inputs, strict=True)}
    copies: dict[int, keras.layers.Layer] = {}
    for node in nodes:
        layer = node.operation
        if layer is None or node.is_input:
            continue
        if id(node) in absorbed:  # BN / activation already inside the sub-pixel conv
            tensors[id(node.outputs[0])] = tensors[id(node.input_tensors[0])]
            continue
        args, kwargs = node.arguments.fill_in(tensors)
        if id(layer) in plans:
            outputs = _emit(plans[id(layer)], args[0], variant)
        elif not isinstance(layer, keras.layers.Layer):  # a stateless keras.ops operation: reuse it
            outputs = layer(*args, **kwargs)
        else:
            new = _copy_layer(layer, copies)
            fresh = not new.built
            kwargs.pop("training", None)
            outputs = new(*args, **kwargs)
            if fresh and layer.weights:
                new.set_weights(layer.get_weights())
        for ref, value in zip(node.outputs, keras.tree.flatten(outputs), strict=True):
            tensors[id(ref)] = value
    outputs = keras.tree.pack_sequence_as(model._outputs_struct, [tensors[id(t)] for t in model.outputs])
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=f"{model.name}_subpixel")


def count_transposed_convs(model: keras.Model) -> int:
    """How many Conv2DTranspose layers a model still has."""
    return sum(isinstance(layer, keras.layers.Conv2DTranspose) for layer in model.layers)
