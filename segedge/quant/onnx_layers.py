"""ONNX per-layer int8 error with ``onnxruntime.quantization.qdq_loss_debug``.

Every activation of the fp32 and the QDQ model is collected on the debug
images; per quantized activation: RMSE of its own quantize/dequantize (pre
vs post QDQ), the scale, and RMSE / correlation of the QDQ model's
activation against the fp32 model's (the accumulated error).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from segedge.quant.layers import ErrorStats, LayerError, ratio, sort_rows


def onnx_quant_params(model_path: Path) -> tuple[dict[str, float], dict[str, int], dict[str, tuple[str, str]]]:
    """Per quantized activation: scale and zero point (from its QuantizeLinear), and its producer node."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scales, zero_points, producers = {}, {}, {}
    for node in model.graph.node:
        for out in node.output:
            producers[out] = (node.name, node.op_type)
        if node.op_type == "QuantizeLinear" and len(node.input) >= 2 and node.input[1] in init:
            scale = init[node.input[1]]
            if scale.size == 1:
                scales[node.input[0]] = float(scale.ravel()[0])
                if len(node.input) > 2 and node.input[2] in init:
                    zero_points[node.input[0]] = int(init[node.input[2]].ravel()[0])
    return scales, zero_points, producers


def onnx_layer_rows(fp32_path: Path, int8_path: Path, batches: Sequence[np.ndarray], scratch: Path) -> list[LayerError]:
    """qdq_loss_debug: activations of both models on ``batches``, matched by tensor name."""
    import onnxruntime as ort
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    input_name = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    aug_float, aug_qdq = scratch / "float_aug.onnx", scratch / "qdq_aug.onnx"
    modify_model_output_intermediate_tensors(str(fp32_path), str(aug_float))
    modify_model_output_intermediate_tensors(str(int8_path), str(aug_qdq))
    feeds = [{input_name: batch} for batch in batches]  # collect_activations only iterates its reader
    float_acts = collect_activations(str(aug_float), iter(feeds))
    qdq_acts = collect_activations(str(aug_qdq), iter(feeds))
    matching = create_activation_matching(qdq_acts, float_acts)
    scales, zero_points, producers = onnx_quant_params(int8_path)
    rows = []
    for name, match in matching.items():
        pre, post = match.get("pre_qdq"), match.get("post_qdq")
        if not pre or not post:
            continue
        local, cross = ErrorStats(), ErrorStats()
        for a, b in zip(pre, post, strict=True):
            local.add(a, b)
        floats = match.get("float")
        if floats:
            for a, b in zip(floats, post, strict=True):
                cross.add(a, b)
        scale = scales.get(name)
        node, op = producers.get(name, (None, "?"))
        rows.append(LayerError(
            name=name, op=op, rmse=local.rmse, scale=scale, rmse_over_scale=ratio(local.rmse, scale),
            correlation=cross.correlation if floats else local.correlation, mean_error=local.mean_error,
            max_abs_error=local.max_abs, num_elements=int(np.asarray(pre[0]).size),
            zero_point=zero_points.get(name), node=node, float_rmse=cross.rmse if floats else None))
    return sort_rows(rows)
