"""One int8 scale per concatenation: onnxruntime's QLinearConcat then copies instead of requantizing.

onnxruntime fuses DequantizeLinear -> Concat -> QuantizeLinear into ``QLinearConcat``.
When an input's scale and zero point equal the output's, the kernel copies that input
(``memcpy``); otherwise it maps every byte through a 256-entry table, single-threaded.
``quantize_static`` calibrates every tensor on its own, so each of the U-Net's 19
concatenations (three per sub-pixel "interleave" shuffle, one per skip connection)
requantized every input: 15 % of the 224 px int8 model's time at one thread, more at two.

Here the tensors that meet a concatenation (its output, the inputs that only Concat /
Reshape-like ops read, and what a Reshape passes through unchanged, since the quantizer
gives a Reshape's output its input's parameters) are calibrated to the union of their
ranges (``TensorQuantOverrides`` rmin / rmax), so they all get one scale and zero point.
TFLite's int8 specification asks the same of CONCATENATION. The union is what the
concatenated tensor holds anyway; an input with a narrower range than the union is stored
with a coarser step, where before it was rounded to its own step and then requantized to
the union's. No float value changes; which tensors share is decided from the graph alone.
Measured at 224 px, one thread: QLinearConcat x19 1.45 -> 0.85 ms; the rest is the four skip
connections, whose encoder tensor (also read by the encoder, and a ReLU6 output whose clamp
the union would exceed) keeps its own range.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# Ops whose quantized output takes its input's scale and zero point in onnxruntime's QDQ
# quantizer (``QDQDirect8BitOp``): a chain through them must share one range.
SAME_AS_INPUT = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten"})


class _Groups:
    """Union-find over tensor names."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        self.parent.setdefault(name, name)
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    def members(self) -> list[list[str]]:
        groups: dict[str, list[str]] = {}
        for name in self.parent:
            groups.setdefault(self.find(name), []).append(name)
        return list(groups.values())


def _clamp(node, constants: dict[str, Any]) -> tuple[float, float] | None:
    """The output bounds of a Relu / Clip node, which the quantizer removes and leaves to the output's range."""
    if node.op_type == "Relu":
        return 0.0, float("inf")
    if node.op_type != "Clip":
        return None
    from onnx import numpy_helper

    bounds = [-float("inf"), float("inf")]
    for index in (1, 2):
        if len(node.input) > index and node.input[index]:
            value = constants.get(node.input[index])
            if value is None:
                return (0.0, 0.0)  # bounds computed at run time: never widen
            bounds[index - 1] = float(numpy_helper.to_array(value))
    for attr in node.attribute:  # opset < 11
        if attr.name in ("min", "max"):
            bounds[0 if attr.name == "min" else 1] = float(attr.f)
    return bounds[0], bounds[1]


def concat_groups(graph, skip: Iterable[str] = ()) -> list[list[str]]:
    """Sets of activation tensors that must share one scale for each Concat to be a copy.

    A Concat's output and those of its inputs that only Concat / Reshape-like ops consume
    ("private" tensors), joined through Reshape-like ops. A tensor that other ops read too
    (a U-Net skip connection, also read by the encoder) keeps its own range: widening it
    would coarsen what its other readers see; the Concat then requantizes that input only.
    ``skip``: names of nodes left float (the float fallback's ``nodes_to_exclude``).
    """
    skipped = set(skip)
    constants = {t.name for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    joining = {"Concat", *SAME_AS_INPUT}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    floats = {out for node in graph.node if node.name in skipped for out in node.output}

    def private(name: str) -> bool:
        readers = consumers.get(name, [])
        return (name not in constants and name not in outputs and name not in floats and bool(readers)
                and all(r.op_type in joining and r.name not in skipped for r in readers))

    groups = _Groups()
    anchors: set[str] = set()
    for node in graph.node:
        if node.name in skipped:
            continue
        if node.op_type == "Concat":
            anchors.add(node.output[0])
            groups.find(node.output[0])
            for name in node.input:
                if name and private(name):
                    groups.union(name, node.output[0])
        elif node.op_type in SAME_AS_INPUT and private(node.input[0]):
            groups.union(node.input[0], node.output[0])
    return [sorted(g) for g in groups.members() if len(g) > 1 and anchors.intersection(g)]


def shared_range_overrides(graph, ranges: dict[str, tuple[Any, Any]],
                           skip: Iterable[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """``TensorQuantOverrides`` giving every tensor of a concat group the union of the group's ranges.

    Outputs of Reshape-like ops are left out (the quantizer copies their input's parameters),
    and so is a Relu / Clip output whose bounds the union would exceed: the quantizer removes
    that op and its clamp lives on only in the output's range. Tensors without a calibrated
    range are left as they are.
    """
    constants = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    passed_through = {node.output[0] for node in graph.node if node.op_type in SAME_AS_INPUT}
    overrides: dict[str, list[dict[str, Any]]] = {}
    for group in concat_groups(graph, skip):
        members = [name for name in group if name in ranges]
        while members:
            low = min(float(np.min(ranges[name][0])) for name in members)
            high = max(float(np.max(ranges[name][1])) for name in members)
            clamped = [name for name in members if name in producer
                       and (bounds := _clamp(producer[name], constants)) is not None
                       and (low < bounds[0] or high > bounds[1])]
            if not clamped:
                break
            members = [name for name in members if name not in clamped]
        for name in members:
            if name not in passed_through:
                # numpy values: the quantizer computes with their dtype
                overrides[name] = [{"rmin": np.float32(low), "rmax": np.float32(high)}]
    return overrides
