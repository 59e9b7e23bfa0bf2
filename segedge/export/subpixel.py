"""Exact export-time rewrite of stride-2 transposed convolutions into sub-pixel convolutions.

A ``Conv2DTranspose(kernel 3, stride 2, padding "same")`` is slow on the edge
runtimes (XNNPACK fp32 TRANSPOSE_CONV, onnxruntime ConvTranspose, which also
keeps a following BatchNormalization unfused). It equals a regular convolution
followed by depth-to-space, with the weights copied, so the rewrite changes
speed and nothing else. Three modules, one job each: ``subpixel_graph`` finds
the layers to replace (and the BatchNormalization / activation each absorbs),
``subpixel_layers`` holds the tap mapping and builds the replacement layers,
and this module rebuilds the model around them.

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

import keras

from segedge.export.subpixel_graph import is_rewritable, plan_rewrites
from segedge.export.subpixel_layers import DepthToSpace, KeepChannels, emit, subpixel_kernels

VARIANTS = ("phases", "dense", "transpose", "interleave", "rows")
__all__ = ["VARIANTS", "DepthToSpace", "KeepChannels", "count_transposed_convs", "is_rewritable",
           "rewrite_transposed_convs", "subpixel_kernels"]


def _copy_layer(layer, cache: dict):
    """A fresh layer with the same config; weights are copied after it is built."""
    if id(layer) not in cache:
        cache[id(layer)] = layer.__class__.from_config(layer.get_config())
    return cache[id(layer)]


def rewrite_transposed_convs(model: keras.Model, *, batch_size: int | None = 1, variant: str = "phases",
                             fold_batchnorm: bool = True, fuse_activation: bool = True,
                             max_filters: int | None = None, channel_multiple: int | None = None) -> keras.Model:
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
    nodes, plans = plan_rewrites(model, fold_batchnorm, fuse_activation, max_filters)
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
            outputs = emit(plans[id(layer)], args[0], variant, channel_multiple)
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
