"""ONNX int8 re-quantized with the K worst nodes left in float, and a check of what really is float.

The K worst activations' producer nodes go to ``quantize_static(nodes_to_exclude=...)``
on the bundle's fp32 ONNX model, calibrated once on the same images (a
calibration cache) and re-quantized per K, with the bundle's calibration
method and ``reduce_range``. A node counts as float when onnxruntime cannot
fuse it into an integer kernel: some input does not come from a
DequantizeLinear, or some output does not go only to QuantizeLinear; an
excluded node that still sits between DQ and Q is reported as not float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segedge.export.calibration import CalibrationSource
from segedge.export.options import CalibMethod
from segedge.quant.layers import LayerError

ONNX_REQUANTIZER = ("onnxruntime.quantization.quantize_static (QDQ, nodes_to_exclude: float fallback of the "
                    "worst layers) after quant_pre_process")


def onnx_fallback_nodes(rows: Sequence[LayerError]) -> list[str]:
    """The producer nodes of the report's ONNX activations, worst first, each once."""
    nodes: list[str] = []
    for row in rows:
        if row.node and row.node not in nodes:
            nodes.append(row.node)
    return nodes


def onnx_float_nodes(model: Path, names: Sequence[str]) -> dict[str, bool | None]:
    """Per node name: True if onnxruntime runs it in float, False if it is QDQ-wrapped, None if absent.

    A node is QDQ-wrapped (fused into an integer kernel) when every input comes from a
    DequantizeLinear and every output goes only to QuantizeLinear nodes.
    """
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    by_name = {node.name: node for node in graph.node}
    result: dict[str, bool | None] = {}
    for name in names:
        node = by_name.get(name)
        if node is None:
            result[name] = None
            continue
        inputs_dq = all(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
                        for i in node.input if i)
        outputs_q = all(consumers.get(o) and all(c.op_type == "QuantizeLinear" for c in consumers[o])
                        for o in node.output)
        result[name] = not (inputs_dq and outputs_q)
    return result


def onnx_input_name(path: Path) -> str:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    return next(i.name for i in graph.input if i.name not in initializers)


@dataclass
class OnnxBuilder:
    """Writes the ONNX int8 model with given nodes excluded from quantization, and says which are float."""

    fp32_path: Path
    work: Path            # quantize_onnx's intermediates, overwritten for each K
    calibration: CalibrationSource
    method: CalibMethod
    reduce_range: bool
    cache: Path           # one calibration for every K
    suffix: str = ".onnx"

    def build(self, names: list[str], path: Path) -> None:
        from segedge.export.onnx import quantize_onnx

        self.work.mkdir(parents=True, exist_ok=True)
        converted = quantize_onnx(self.fp32_path, self.work, self.calibration, onnx_input_name(self.fp32_path),
                                  self.method, self.reduce_range, nodes_to_exclude=names,
                                  calibration_cache=self.cache)
        path.write_bytes(converted.data)

    def float_check(self, path: Path, names: list[str]) -> list[str]:
        floats = onnx_float_nodes(path, names)
        return [n for n in names if floats[n]]
