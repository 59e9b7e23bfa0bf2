"""One operator of a .tflite model, cut out and timed alone: LiteRT's Python API has no op profiler.

The op keeps its constant inputs (weights, quantization parameters) and is fed
random activations of its input types; it runs on LiteRT's interpreter with the
edge's thread count and default XNNPACK delegate. Isolated times miss cross-op
fusion and cache reuse and add one ``invoke()`` overhead per op, which is why
every caller prints their sum beside the whole model's p50. Used by
``segedge bench --profile`` (``segedge.bench.profile``) and
``benchmarks/bench_ops.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np


def random_input(shape: Any, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    """Random values of a tensor's shape and type (dynamic dimensions as 1): what an isolated op is fed."""
    shape = [int(d) if isinstance(d, (int, np.integer)) and d > 0 else 1 for d in shape]
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1, 1, shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -128), min(info.max, 255) + 1, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    raise ValueError(f"cannot make random input of dtype {dtype}")



def single_op_model(model: Any, op_index: int) -> Any:
    """A ModelT holding only operator ``op_index`` of subgraph 0; None if it cannot stand alone."""
    from ai_edge_litert import schema_py_generated as fb

    graph = model.subgraphs[0]
    op = graph.operators[op_index]
    if op.opcodeIndex is None or (op.intermediates is not None and len(op.intermediates)):
        return None
    new = fb.ModelT()
    new.version, new.description = model.version, "segedge single op"
    new.operatorCodes = model.operatorCodes
    new.buffers = [fb.BufferT()]
    sub = fb.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs = [], [], []
    remap: dict[int, int] = {}

    def add(index: int) -> int:
        if index < 0:
            return index
        if index in remap:
            return remap[index]
        old = graph.tensors[index]
        tensor = fb.TensorT()
        for attr in ("shape", "type", "name", "quantization", "isVariable", "sparsity", "shapeSignature",
                     "hasRank", "variantTensors"):
            if hasattr(old, attr):
                setattr(tensor, attr, getattr(old, attr))
        data = model.buffers[old.buffer].data if old.buffer else None
        if data is not None and len(data):
            tensor.buffer = len(new.buffers)
            buf = fb.BufferT()
            buf.data = data
            new.buffers.append(buf)
        else:
            tensor.buffer = 0
            sub.inputs.append(len(sub.tensors))
        remap[index] = len(sub.tensors)
        sub.tensors.append(tensor)
        return remap[index]

    new_op = fb.OperatorT()
    for attr in ("opcodeIndex", "builtinOptionsType", "builtinOptions", "customOptions", "customOptionsFormat",
                 "builtinOptions2Type", "builtinOptions2"):
        if hasattr(op, attr):
            setattr(new_op, attr, getattr(op, attr))
    new_op.inputs = [add(i) for i in op.inputs]
    outputs = []
    for i in op.outputs:
        if i in remap:  # an op that writes one of its inputs cannot be cut out this way
            return None
        remap[i] = len(sub.tensors)
        tensor = fb.TensorT()
        old = graph.tensors[i]
        for attr in ("shape", "type", "name", "quantization", "shapeSignature", "hasRank"):
            if hasattr(old, attr):
                setattr(tensor, attr, getattr(old, attr))
        tensor.buffer = 0
        sub.tensors.append(tensor)
        outputs.append(remap[i])
    new_op.outputs = outputs
    sub.outputs = outputs
    sub.operators = [new_op]
    sub.name = "op"
    new.subgraphs = [sub]
    return new



def isolated_op_ms(path: str | Path, threads: int, runs: int, warmup: int = 2) -> list[tuple[str, float | None]]:
    """(op type, median ms) per operator of subgraph 0, each cut out of the model and timed alone.

    The op keeps its constant inputs (weights, quantization) and gets random activations of its
    input types; the interpreter is LiteRT's with ``num_threads`` and its default XNNPACK delegate,
    as the edge runs. None where an op cannot stand alone or fails to run so.
    """
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    from segedge.contract.runtime import tflite_interpreter_class

    interpreter_class = tflite_interpreter_class()
    model = fbu.read_model_from_bytearray(bytearray(Path(path).read_bytes()))
    rng = np.random.default_rng(0)
    timed: list[tuple[str, float | None]] = []
    for index, op in enumerate(model.subgraphs[0].operators):
        op_type = fbu.opcode_to_name(model, op.opcodeIndex) or f"op{op.opcodeIndex}"
        single = single_op_model(model, index)
        if single is None:
            timed.append((op_type, None))
            continue
        try:
            interpreter = interpreter_class(model_content=bytes(fbu.convert_object_to_bytearray(single)),
                                            num_threads=threads)
            interpreter.allocate_tensors()
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], random_input(detail["shape"], detail["dtype"], rng))
            for _ in range(warmup):
                interpreter.invoke()
            samples = []
            for _ in range(max(runs, 1)):
                start = time.perf_counter_ns()
                interpreter.invoke()
                samples.append((time.perf_counter_ns() - start) / 1e6)
            timed.append((op_type, float(np.median(samples))))
        except (RuntimeError, ValueError):
            timed.append((op_type, None))
    return timed
