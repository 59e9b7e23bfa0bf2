#!/usr/bin/env python
"""Per-op time profile of a .tflite or .onnx model: top ops by type and by node.

ONNX: onnxruntime's own profiler (``SessionOptions.enable_profiling``); the
kernel events of the timed runs (warm-up runs excluded) are summed per node and
per op type and divided by the number of runs.

TFLite: LiteRT's Python API has no op profiler and no pip package ships
``benchmark_model``, so each operator is cut out of the flatbuffer into a
one-op model (its constant inputs, e.g. weights and quantization parameters,
kept; its activations fed as random inputs of the right type) and timed on its
own with the same ``num_threads`` and default XNNPACK delegate. ``xnn`` says
whether XNNPACK took the op (a ``no`` is a reference kernel, usually the slow
one). Isolated times miss cross-op fusion and cache reuse and add one
``invoke()`` overhead per op, so the sum is printed beside the whole-model p50
as a check of how far to trust them.

Examples::

    python benchmarks/bench_ops.py BUNDLE/model_int8.tflite --threads 2
    python benchmarks/bench_ops.py BUNDLE/model_int8.onnx --threads 1 --runs 20 --json ops.json
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from tables import print_markdown_table  # benchmarks/ is the script's own folder

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from segedge.bench.op_isolation import random_input, single_op_model  # noqa: E402 - after the path fix above


def log(message: str) -> None:
    print(f"[ops] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See benchmarks/README.md.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .tflite or .onnx file")
    p.add_argument("--threads", type=int, default=1, help="LiteRT num_threads / ORT intra_op_num_threads (default 1)")
    p.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    p.add_argument("--no-xnnpack", action="store_true",
                   help="TFLite: built-in kernels without the default XNNPACK delegate")
    p.add_argument("--json", dest="json_path", help="write the full profile here")
    args = p.parse_args(argv)
    if args.threads < 1 or args.runs < 1 or args.warmup < 0:
        p.error("--threads and --runs must be >= 1, --warmup >= 0")
    if not Path(args.model).is_file():
        p.error(f"{args.model}: not found")
    if not args.model.endswith((".tflite", ".onnx")):
        p.error(f"{args.model}: expected a .tflite or .onnx file")
    return args


def time_calls(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


# --------------------------------------------------------------------------- TFLite

def _interpreter(content: bytes, threads: int, xnnpack: bool):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_content=bytes(content), num_threads=threads,
                              experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    return interpreter


def profile_tflite(path: str, threads: int, runs: int, warmup: int, xnnpack: bool) -> dict:
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    content = Path(path).read_bytes()
    rng = np.random.default_rng(0)
    whole = _interpreter(content, threads, xnnpack)
    for detail in whole.get_input_details():
        whole.set_tensor(detail["index"], random_input(detail["shape"], detail["dtype"], rng))
    whole_ms = time_calls(whole.invoke, runs, warmup)
    model = fbu.read_model_from_bytearray(bytearray(content))
    if len(model.subgraphs) != 1:
        log(f"{len(model.subgraphs)} subgraphs: only the first is profiled")
    graph = model.subgraphs[0]
    nodes, skipped = [], []
    t_start = time.perf_counter()
    for index, op in enumerate(graph.operators):
        op_type = fbu.opcode_to_name(model, op.opcodeIndex) or f"op{op.opcodeIndex}"
        out_name = graph.tensors[op.outputs[0]].name
        out_name = out_name.decode() if isinstance(out_name, bytes) else str(out_name)
        single = single_op_model(model, index)
        if single is None:
            skipped.append(f"{index}:{op_type}")
            continue
        try:
            interp = _interpreter(fbu.convert_object_to_bytearray(single), threads, xnnpack)
            for detail in interp.get_input_details():
                interp.set_tensor(detail["index"], random_input(detail["shape"], detail["dtype"], rng))
            delegated = any(d["op_name"] == "DELEGATE" for d in interp._get_ops_details())
            times = time_calls(interp.invoke, runs, warmup)
        except (RuntimeError, ValueError) as exc:
            skipped.append(f"{index}:{op_type} ({str(exc).splitlines()[0][:80]})")
            continue
        shape = list(graph.tensors[op.outputs[0]].shape)
        nodes.append({"index": index, "op": op_type, "node": out_name, "output_shape": shape,
                      "ms": statistics.median(times), "xnnpack": delegated})
        if time.perf_counter() - t_start > 2:
            log(f"op {index + 1}/{len(graph.operators)}")
            t_start = time.perf_counter()
    return {"format": "tflite", "whole_p50_ms": statistics.median(whole_ms), "nodes": nodes, "skipped": skipped,
            "method": "isolated single-op models (XNNPACK)" if xnnpack else "isolated single-op models (builtin)"}


# --------------------------------------------------------------------------- ONNX

def profile_onnx(path: str, threads: int, runs: int, warmup: int) -> dict:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="segedge-ops-") as tmp:
        from segedge.contract.runtime import ort_session_options

        options = ort_session_options(ort, threads)  # exactly what the edge backend runs with
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "ort_profile")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        types = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8,
                 "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
        feeds = {i.name: random_input(i.shape, types[i.type], rng) for i in session.get_inputs()}
        whole_ms = time_calls(lambda: session.run(None, feeds), runs, warmup)
        profile_path = session.end_profiling()
        events = json.loads(Path(profile_path).read_text())
    run_starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    timed_starts = run_starts[warmup:] or run_starts
    per_node: dict[str, dict] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < timed_starts[0]:
            continue
        name = e["name"][: -len("_kernel_time")]
        args = e.get("args", {})
        node = per_node.setdefault(name, {"node": name, "op": args.get("op_name", "?"),
                                          "provider": args.get("provider", ""),
                                          "output_shape": args.get("output_type_shape", ""),
                                          "per_run_us": [0.0] * len(timed_starts)})
        node["per_run_us"][bisect.bisect_right(timed_starts, e["ts"]) - 1] += e["dur"]
    # Median over runs, per node: a preemption spike in one run (shared machine) does not move it.
    nodes = [{**{k: v for k, v in n.items() if k != "per_run_us"}, "ms": statistics.median(n["per_run_us"]) / 1e3}
             for n in per_node.values()]
    # The graph as onnxruntime runs it (after fusions): e.g. QLinearConv vs DequantizeLinear->Conv.
    return {"format": "onnx", "whole_p50_ms": statistics.median(whole_ms), "nodes": nodes, "skipped": [],
            "method": "onnxruntime profiler, median kernel time per run"}


# --------------------------------------------------------------------------- report

def summarize(profile: dict, top: int, out=sys.stdout) -> dict:
    nodes = profile["nodes"]
    total = sum(n["ms"] for n in nodes) or 1e-9
    by_type: dict[str, dict] = defaultdict(lambda: {"ms": 0.0, "count": 0, "xnnpack": 0})
    for n in nodes:
        entry = by_type[n["op"]]
        entry["ms"] += n["ms"]
        entry["count"] += 1
        entry["xnnpack"] += int(bool(n.get("xnnpack")))
    types = sorted(({"op": k, **v} for k, v in by_type.items()), key=lambda r: -r["ms"])
    tflite = profile["format"] == "tflite"
    print(f"\n{profile['method']}: whole model p50 {profile['whole_p50_ms']:.2f} ms, "
          f"sum of per-op {total:.2f} ms ({len(nodes)} ops)", file=out)
    head = ["op type", "count", "ms/run", "share"] + (["xnnpack"] if tflite else [])
    rows = [[t["op"], str(t["count"]), f"{t['ms']:.3f}", f"{100 * t['ms'] / total:.1f}%"]
            + ([f"{t['xnnpack']}/{t['count']}"] if tflite else []) for t in types[:top]]
    print_markdown_table(head, rows, out)
    top_nodes = sorted(nodes, key=lambda n: -n["ms"])[:top]
    head = ["node", "op", "output shape", "ms/run", "share"] + (["xnnpack"] if tflite else [])
    rows = [[_short(n["node"]), n["op"], str(n.get("output_shape", "")), f"{n['ms']:.3f}",
             f"{100 * n['ms'] / total:.1f}%"] + (["yes" if n.get("xnnpack") else "no"] if tflite else [])
            for n in top_nodes]
    print(file=out)
    print_markdown_table(head, rows, out)
    if profile["skipped"]:
        print(f"\nnot profiled ({len(profile['skipped'])}): {', '.join(profile['skipped'][:20])}", file=out)
    return {"by_type": types, "top_nodes": top_nodes}


def _short(name: str, width: int = 60) -> str:
    return name if len(name) <= width else "..." + name[-(width - 3):]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log(f"profiling {args.model} with {args.threads} thread(s), {args.runs} runs")
    if args.model.endswith(".tflite"):
        profile = profile_tflite(args.model, args.threads, args.runs, args.warmup, not args.no_xnnpack)
    else:
        profile = profile_onnx(args.model, args.threads, args.runs, args.warmup)
    summary = summarize(profile, args.top)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"model": args.model, "threads": args.threads, **profile,
                                                     **summary}, indent=1, default=str))
        log(f"wrote {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
