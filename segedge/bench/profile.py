"""``segedge bench --profile``: where one artifact's inference time goes, per op type.

onnxruntime: its own profiler (``SessionOptions.enable_profiling``) writes a
JSON trace; each ``Node`` event with a ``*_kernel_time`` name is one op run,
with its op type and the execution provider that ran it. Summed per op type
and divided by the runs, that is milliseconds per inference.

LiteRT: the Python ``Interpreter`` has no op profiler to read (its
``experimental_force_delegate_node_profiling`` only feeds a C++ profiler the
Python API does not expose, and no pip package ships ``benchmark_model``).
Two things it does allow, both reported as what they are:

- the execution plan after delegation: opened with delegate node fusion off,
  XNNPACK replaces each op it takes with one ``DELEGATE`` node producing that
  op's outputs, so an op whose outputs no ``DELEGATE`` node produces runs on
  LiteRT's own kernels, outside XNNPACK. Those ops are flagged;
- time per op measured in isolation (``benchmarks/bench_ops.py``'s method):
  each operator cut out of the flatbuffer into a one-op model and timed alone.
  The sum is shown so a reader can see how far it is from the real p50.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segedge.bench.op_isolation import isolated_op_ms

DELEGATE = "DELEGATE"
XNNPACK = "XNNPACK"
TFLITE_PLAN = ("XNNPACK's share of the model as LiteRT delegates it (node fusion off, so each op it takes is one "
               "DELEGATE node); an op left to LiteRT's own kernels is flagged")
TFLITE_ISOLATED = ("LiteRT's Python API has no op profiler, so each op is cut out of the model into a one-op model "
                   "(weights kept, random activations) and timed alone with the same threads and XNNPACK; isolated "
                   "times miss cross-op fusion and cache reuse and add one invoke() overhead per op, so compare "
                   "their sum with the whole-model p50.")
TFLITE_NO_TIMES = ("no op times: this runtime (tflite-runtime) lacks LiteRT's flatbuffer tools that cut ops out, and "
                   "its Python API has no op profiler")
ISOLATED_RUNS = 20  # timed calls per isolated op: ~90 ops per model, so --profile stays seconds, not minutes


@dataclass
class OpType:
    """One op type in one artifact: how many nodes, where they run, and (onnxruntime) their time."""

    op: str
    count: int
    outside: int = 0  # nodes of this type not run by the fast path (XNNPACK for TFLite)
    ms: float | None = None  # per inference, summed over the nodes
    share: float | None = None  # of all op time
    engine: str = ""  # who runs them: XNNPACK, LiteRT kernels, or onnxruntime's provider(s)


@dataclass
class Profile:
    tool: str
    runs: int
    ops: list[OpType] = field(default_factory=list)
    note: str = ""
    sum_ms: float | None = None  # the op times summed (TFLite: isolated ops; compare with the model's p50)

    @property
    def outside(self) -> list[OpType]:
        return [op for op in self.ops if op.outside]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outside_xnnpack"] = [f"{op.op} x{op.outside}" for op in self.outside]
        return data


def tflite_plan(path: str | Path, threads: int = 1) -> Profile:
    """The op types of a .tflite model and which of them XNNPACK takes (delegation plan, no times)."""
    from segedge.contract.runtime import tflite_interpreter_class

    interpreter_class = tflite_interpreter_class()
    try:
        interpreter = interpreter_class(model_path=str(path), num_threads=threads,
                                        experimental_disable_delegate_node_fusion=True)
    except TypeError:  # an older tflite-runtime without the option: the plan cannot be read op by op
        return Profile("tflite", 0, note="this LiteRT/tflite-runtime cannot disable delegate node fusion, so "
                                         "the per-op delegation plan is not readable")
    interpreter.allocate_tensors()
    nodes = interpreter._get_ops_details()  # noqa: SLF001 - LiteRT's documented-experimental accessor
    delegated_outputs: set[int] = set()
    for node in nodes:
        if node["op_name"] == DELEGATE:
            delegated_outputs.update(int(t) for t in node["outputs"])
    counts: Counter[str] = Counter()
    outside: Counter[str] = Counter()
    for node in nodes:
        if node["op_name"] == DELEGATE:
            continue
        counts[node["op_name"]] += 1
        if not {int(t) for t in node["outputs"]} <= delegated_outputs:
            outside[node["op_name"]] += 1
    ops = [OpType(name, count, outside[name], engine=_tflite_engine(count, outside[name]))
           for name, count in counts.most_common()]
    return Profile("tflite", 0, ops, TFLITE_PLAN)


def tflite_profile(path: str | Path, threads: int, runs: int) -> Profile:
    """The delegation plan plus each op type's isolated time (summed over its nodes) and share."""
    profile = tflite_plan(path, threads)
    try:
        timed = isolated_op_ms(path, threads, min(runs, ISOLATED_RUNS))
    except ImportError:  # tflite-runtime has no flatbuffer tools: the plan alone
        profile.note = (profile.note + "; " if profile.note else "") + TFLITE_NO_TIMES
        return profile
    totals: dict[str, float] = defaultdict(float)
    missing: Counter[str] = Counter()
    for op_type, ms in timed:
        if ms is None:
            missing[op_type] += 1
        else:
            totals[op_type] += ms
    whole = sum(totals.values())
    for op in profile.ops:
        if op.op in totals:
            op.ms = totals[op.op]
            op.share = op.ms / whole if whole else None
    profile.ops.sort(key=lambda op: -(op.ms or 0.0))
    profile.runs = min(runs, ISOLATED_RUNS)
    profile.sum_ms = whole
    skipped = ", ".join(f"{name} x{n}" for name, n in missing.items())
    profile.note = (f"{profile.note}. Times: {TFLITE_ISOLATED} Sum of the isolated times: {whole:.3f} ms"
                    + (f"; not timed alone: {skipped}" if skipped else "") + ".")
    return profile


def _tflite_engine(count: int, outside: int) -> str:
    if outside == 0:
        return XNNPACK
    return "LiteRT kernels" if outside == count else f"{XNNPACK} ({count - outside}), LiteRT kernels ({outside})"


def onnx_profile(path: str | Path, threads: int, tensor: np.ndarray, runs: int, warmup: int = 2) -> Profile:
    """Milliseconds per inference per op type from onnxruntime's own profiler, over ``runs`` runs.

    The session is the edge's (same options) with profiling on; the warm-up runs are in the trace too,
    so only node events inside the last ``runs`` ``model_run`` spans are counted.
    """
    import onnxruntime as ort

    from segedge.contract.runtime import ort_session_options

    with tempfile.TemporaryDirectory(prefix="segedge-profile-") as tmp:
        options = ort_session_options(ort, threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: tensor}
        for _ in range(warmup + runs):
            session.run(None, feed)
        trace = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    return summarize_onnx(timed_node_events(trace, runs), runs)


def timed_node_events(trace: Any, runs: int) -> list[dict[str, Any]]:
    """The op events of the last ``runs`` runs in an onnxruntime trace (each run is one ``model_run`` span)."""
    events = trace if isinstance(trace, list) else trace.get("traceEvents", [])
    spans = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0))) for e in events
                   if e.get("name") == "model_run")[-runs:] if runs > 0 else []
    nodes = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
    return [e for e in nodes if any(start <= float(e["ts"]) <= end for start, end in spans)]


def summarize_onnx(events: list[dict[str, Any]], runs: int) -> Profile:
    """Node kernel events -> per op type: node count, ms per run, share, provider(s)."""
    totals: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    providers: dict[str, set[str]] = defaultdict(set)
    for event in events:
        args = event.get("args", {})
        op = str(args.get("op_name", "?"))
        totals[op] += float(event.get("dur", 0.0))  # microseconds
        nodes[op].add(str(event.get("name")))
        providers[op].add(str(args.get("provider", "?")))
    per_run = {op: total / 1000.0 / max(runs, 1) for op, total in totals.items()}
    whole = sum(per_run.values())
    ops = [OpType(op, len(nodes[op]), 0, ms, ms / whole if whole else None,
                  ", ".join(sorted(p.replace("ExecutionProvider", "") for p in providers[op])))
           for op, ms in sorted(per_run.items(), key=lambda item: -item[1])]
    return Profile("onnxruntime", runs, ops, "onnxruntime's profiler (kernel time per node; no XNNPACK in this "
                                            "onnxruntime build: every op runs on the provider shown)")


def profile_artifact(runtime: str, path: str | Path, threads: int, tensor: np.ndarray, runs: int) -> Profile:
    """The profile for one artifact, by runtime; the Keras row gets none."""
    if runtime == "tflite":
        return tflite_profile(path, threads, runs)
    if runtime == "onnx":
        return onnx_profile(path, threads, tensor, runs)
    return Profile(runtime, 0, note="no per-op profile for this runtime")


PROFILE_HEAD = ("op type", "nodes", "ms per run", "share %", "runs on")


@dataclass
class ProfileSection:
    """One artifact's profile as the report shows it (report.md and report.html render the same cells)."""

    title: str
    note: str
    rows: list[tuple[str, ...]]
    outside: str  # "" when every op runs inside XNNPACK (or the runtime has no such split)


def profile_sections(rows: list[dict[str, Any]]) -> list[ProfileSection]:
    """The report's per-op tables: one per artifact row that carries a profile."""
    sections = []
    for row in rows:
        data = row.get("profile")
        if not data:
            continue
        cells = [(op["op"], str(op["count"]), "–" if op["ms"] is None else f"{op['ms']:.3f}",
                  "–" if op["share"] is None else f"{100 * op['share']:.1f}", op["engine"]) for op in data["ops"]]
        flagged = ", ".join(data.get("outside_xnnpack") or [])
        outside = f"outside XNNPACK: {flagged}" if flagged else ""
        runs = f", {data['runs']} runs" if data.get("runs") else ""
        title = f"{row['artifact']} ({data['tool']}, {row['threads']} thread{'s' * (row['threads'] != 1)}{runs})"
        note = data.get("note", "")
        if data.get("sum_ms") is not None and row.get("p50_ms"):
            note += f" This row's whole-model p50: {row['p50_ms']:.3f} ms."
        sections.append(ProfileSection(title, note, cells, outside))
    return sections
