"""Which Conv2DTranspose layers the sub-pixel rewrite replaces, and what each absorbs.

Walks a functional Keras model in execution order. A 3x3 / stride-2 / "same"
transposed convolution is rewritable; a BatchNormalization that is its only
consumer is folded into it, and a plain ReLU / ReLU6 after that becomes its
activation. Shared layers and multi-input consumers are left alone. The plans
are built here and emitted by ``segedge.export.subpixel_layers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras

_FUSABLE_ACTIVATIONS = ("linear", "relu", "relu6")


@dataclass
class Plan:
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


def plan_rewrites(model: keras.Model, fold_batchnorm: bool, fuse_activation: bool,
                  max_filters: int | None = None) -> tuple[list, dict[int, Plan]]:
    """The model's nodes in execution order, and a plan per rewritable layer (keyed by ``id(layer)``)."""
    nodes, consumers = _graph(model)
    outputs = {id(t) for t in model.outputs}
    plans: dict[int, Plan] = {}
    for node in nodes:
        layer = node.operation
        if not is_rewritable(layer) or len(layer._inbound_nodes) != 1:
            continue
        if max_filters is not None and layer.filters > max_filters:
            continue
        plan = Plan(layer, activation=_activation_name(layer.activation))
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
