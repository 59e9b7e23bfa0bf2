#!/usr/bin/env python
"""Keras vs every exported artifact, side by side, in one run, one table.

Times Keras ``predict``, a Keras compiled call (``tf.function``) and every
artifact of a bundle (or of a synthetic random-weights model this script
builds and converts itself) at each batch size and thread count, and prints
p50 / p90 latency and the ratio to Keras fp32 ``predict`` at the same batch and
threads.

How the numbers are made honest on a shared, noisy machine:

* one worker process per thread count; it sets TensorFlow's intra/inter-op
  pools, LiteRT ``num_threads`` and onnxruntime ``intra_op_num_threads`` to the
  same N, so Keras is held to the thread budget the edge runtimes get;
* every measured thing is opened first, warmed up, and then timed in
  interleaved rounds (a few runs of each, round-robin), so a load spike from
  someone else's job hits all rows alike instead of one;
* ``--isolate`` gives every row and round a process of its own: with 2 threads on
  2 cores, idle runtime thread pools that spin after a run (onnxruntime, XNNPACK)
  slow down whichever row runs next in a shared worker;
* an artifact is timed through ``segedge.contract.runtime.open_backend``'s
  ``prepare -> invoke -> finish`` (float in, float logits out, the same work
  ``predict`` does); ``invoke_p50_ms`` is the runtime alone;
* ``agree`` is argmax agreement with the Keras fp32 model on the timed batch:
  a fast artifact that computes something else shows up here.

Examples::

    python benchmarks/bench_runtimes.py --synthetic                       # minutes
    python benchmarks/bench_runtimes.py BUNDLE --model RUN/model.keras --json out.json
    python benchmarks/bench_runtimes.py BUNDLE --model RUN/model.keras --keras predict --batches 1 \
        --isolate --also OTHER_BUNDLE/model_int8.onnx          # A/B, each row in its own process
    python benchmarks/bench_runtimes.py --synthetic --variants original,subpixel \\
        --targets fp32,int8,onnx,onnx-int8,onnx-int8-u8 --batches 1 --runs 30 --workdir /tmp/sp224
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tables import print_markdown_table  # noqa: E402  (benchmarks/ is the script's own folder)

# Synthetic-mode model variants: (rewrite variant or None, fold BatchNorm / activation, max filters rewritten).
VARIANTS: dict[str, tuple[str | None, bool, int | None]] = {
    "original": (None, False, None),             # the trained graph on a fixed batch-1 input
    "subpixel": ("phases", True, None),          # exact-tap convs + DepthToSpace, BN + ReLU folded (export default)
    "subpixel-narrow": ("phases", True, 64),     # only the <= 64-filter layers (TFLite int8 before all five were)
    "subpixel-interleave": ("interleave", True, None),  # phases shuffled by concat + reshape (no DepthToSpace)
    "subpixel-nofold": ("phases", False, None),  # same rewrite, BN and ReLU left after DepthToSpace
    "subpixel-dense": ("dense", True, None),     # one Conv2D(2x2, 4C) + DepthToSpace: 16/9 of the multiply-adds
    "transpose-fold": ("transpose", True, None),  # Conv2DTranspose kept, BN + ReLU folded into it
}
# Synthetic-mode targets: file name, runtime and how to make it.
TARGETS: dict[str, dict] = {
    "fp32": {"file": "model_fp32.tflite"},
    "int8": {"file": "model_int8.tflite"},
    "onnx": {"file": "model_fp32.onnx"},
    "onnx-nchw": {"file": "model_fp32_nchw.onnx", "nchw": True},
    "onnx-int8": {"file": "model_int8.onnx", "format": "QDQ", "act": "QInt8", "reduce_range": False},
    "onnx-int8-u8": {"file": "model_int8_u8.onnx", "format": "QDQ", "act": "QUInt8", "reduce_range": False},
    "onnx-int8-rr": {"file": "model_int8_rr.onnx", "format": "QDQ", "act": "QUInt8", "reduce_range": True},
    "onnx-int8-qop": {"file": "model_int8_qop.onnx", "format": "QOperator", "act": "QUInt8", "reduce_range": False},
    "onnx-int8-nchw": {"file": "model_int8_nchw.onnx", "format": "QDQ", "act": "QInt8", "reduce_range": False,
                       "nchw": True},
}
DEFAULT_TARGETS = "fp32,int8,onnx,onnx-int8"
BUILDER_VERSION = 2  # bump when a converter changes, so --workdir caches are rebuilt


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def int_list(text: str) -> list[int]:
    values = [int(v) for v in csv_list(text)]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="See benchmarks/README.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", nargs="?", help="bundle folder (manifest.json + artifacts)")
    p.add_argument("--synthetic", action="store_true",
                   help="build a random-weights U-Net and convert it here instead of reading a bundle")
    p.add_argument("--model", help="Keras model (.keras) for the Keras rows in bundle mode")
    p.add_argument("--size", type=int, default=224, help="synthetic input size (default 224)")
    p.add_argument("--classes", type=int, default=21, help="synthetic output classes (default 21)")
    p.add_argument("--variants", default="original,subpixel",
                   help=f"synthetic model variants, from {', '.join(VARIANTS)} (default original,subpixel)")
    p.add_argument("--targets", default=DEFAULT_TARGETS,
                   help=f"synthetic artifacts, from {', '.join(TARGETS)} (default {DEFAULT_TARGETS})")
    p.add_argument("--calibration", type=int, default=20, help="synthetic int8 calibration images (default 20)")
    p.add_argument("--keras", default="predict,call",
                   help="Keras rows: predict, call (tf.function), xla (tf.function jit_compile); '' for none")
    p.add_argument("--keras-variants", action="store_true",
                   help="also time Keras on each synthetic variant (rows keras:VARIANT)")
    p.add_argument("--batches", type=int_list, default=[1, 4], help="batch sizes (default 1,4)")
    p.add_argument("--threads", type=int_list, default=[1, 2], help="thread counts (default 1,2)")
    p.add_argument("--runs", type=int, default=20, help="timed runs per row (default 20; use >= 30 to report)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs per row first (default 3)")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds the runs are split into (default 4)")
    p.add_argument("--also", default="",
                   help="comma list of extra .tflite/.onnx files (another bundle's, an experiment's) timed in the "
                        "same interleaved rounds; rows 'also:PARENT/FILE'")
    p.add_argument("--isolate", action="store_true",
                   help="time every row in a process of its own, alternating rows round by round (honest "
                        "2-thread figures on a 2-core machine; no 'agree' column)")
    p.add_argument("--only", default="", help="comma list of substrings: time only artifacts whose name has one")
    p.add_argument("--workdir", help="synthetic: keep artifacts here and reuse them on the next run")
    p.add_argument("--build-only", action="store_true", help="synthetic: convert (into --workdir) and stop")
    p.add_argument("--max-load", type=float, default=None,
                   help="before each worker, wait (up to --max-wait s) for the 1-min load average to drop below this")
    p.add_argument("--max-wait", type=float, default=600.0, help="seconds --max-load waits at most (default 600)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_path", help="write {'rows': [...]} here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    if bool(args.bundle) == bool(args.synthetic):
        p.error("give a BUNDLE folder or --synthetic (one of them)")
    for name in csv_list(args.variants):
        if name not in VARIANTS:
            p.error(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    for name in csv_list(args.targets):
        if name not in TARGETS:
            p.error(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
    for name in csv_list(args.keras):
        if name not in ("predict", "call", "xla"):
            p.error(f"unknown Keras mode {name!r}; choose from predict, call, xla")
    if args.runs < 1 or args.rounds < 1 or args.warmup < 0:
        p.error("--runs and --rounds must be >= 1, --warmup >= 0")
    return args


# --------------------------------------------------------------------------- inputs

def realistic_images(count: int, size: int, seed: int) -> np.ndarray:
    """uint8 (N, S, S, 3): the synthetic VOC generator's scenes (textured background, shapes), resized."""
    from segedge.contract.preprocess import PreprocessSpec, resize_uint8
    from segedge.data.synth import make_sample

    rng = np.random.default_rng(seed)
    spec = PreprocessSpec(size, size)
    return np.stack([resize_uint8(make_sample(rng, size, 3)[0].convert("RGB"), spec)[0] for _ in range(count)])


def scale(pixels: np.ndarray, scaling: str = "mobilenet") -> np.ndarray:
    from segedge.contract.preprocess import SCALING_CONSTANTS

    factor, offset = SCALING_CONSTANTS[scaling]
    return (pixels.astype(np.float32) * np.float32(factor) + np.float32(offset)).astype(np.float32)


# --------------------------------------------------------------------------- synthetic build

def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _concrete(model):
    import tensorflow as tf

    src = model.inputs[0]
    spec = tf.TensorSpec(src.shape, src.dtype, name=src.name)
    return tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)


def convert_tflite(model, path: Path, calib: np.ndarray | None) -> None:
    """fp32 (calib None) or full-int8 with uint8 input/output, fixed batch 1 (XNNPACK-friendly)."""
    import tensorflow as tf

    # No trackable object: the converter then freezes the variables into constants (4x faster to
    # convert, and int8 calibration fails on READ_VARIABLE ops otherwise).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_concrete(model)])
    if calib is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(len(calib)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    path.write_bytes(converter.convert())


def convert_onnx(model, path: Path, nchw: bool) -> None:
    import tensorflow as tf
    import tf2onnx

    source = model.inputs[0]  # one tensor, whether ``model.input`` is a tensor or a one-element list
    name = source.name
    spec = (tf.TensorSpec(source.shape, source.dtype, name=name),)
    # NCHW: the input and the output both stay NCHW, the layout transposes move to numpy in the backend.
    extra = {"inputs_as_nchw": [name], "outputs_as_nchw": list(model.output_names)} if nchw else {}
    model_proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, **extra)
    path.write_bytes(model_proto.SerializeToString())


def quantize_onnx(fp32: Path, path: Path, calib: np.ndarray, fmt: str, act: str, reduce_range: bool,
                  nchw: bool) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    pre = path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre))
    import onnx

    input_name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
    batches = [np.ascontiguousarray(calib[i : i + 1].transpose(0, 3, 1, 2)) if nchw else calib[i : i + 1]
               for i in range(len(calib))]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else {input_name: batch}

    quantize_static(str(pre), str(path), Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=True,
                    reduce_range=reduce_range, activation_type=getattr(QuantType, act),
                    weight_type=QuantType.QInt8)
    pre.unlink()


def build_synthetic(args, workdir: Path) -> dict:
    """Make (or reuse, if the parameters match) the Keras models and artifacts; a worker plan."""
    _quiet_tf()
    variants, targets = csv_list(args.variants), csv_list(args.targets)
    params = {"size": args.size, "classes": args.classes, "seed": args.seed, "calibration": args.calibration,
              "builder": BUILDER_VERSION}
    stamp = workdir / "build.json"
    old = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if old.get("params") != params:
        old = {"params": params, "files": {}}
    done: dict[str, float] = old["files"]
    workdir.mkdir(parents=True, exist_ok=True)

    def fresh(rel: str) -> bool:
        return rel in done and (workdir / rel).is_file()

    import keras

    from segedge.export.graph import clone_on_fixed_input
    from segedge.export.subpixel import rewrite_transposed_convs
    from segedge.train.model import build_unet

    calib = scale(realistic_images(args.calibration, args.size, args.seed + 1))
    original_path = workdir / "original.keras"
    if fresh("original.keras"):
        original = keras.models.load_model(original_path, compile=False)
    else:
        keras.utils.set_random_seed(args.seed)
        original = build_unet(args.size, args.classes, encoder_weights=None)
        original.save(original_path)
        done["original.keras"] = 0.0
    plan = {"size": args.size, "scaling": "mobilenet", "keras": [], "artifacts": []}
    plan["keras"].append({"artifact": "keras", "path": str(original_path)})
    for variant in variants:
        rewrite, fold, max_filters = VARIANTS[variant]
        vdir = workdir / variant
        vdir.mkdir(exist_ok=True)
        model = None

        def variant_model(rewrite=rewrite, fold=fold, max_filters=max_filters):
            if rewrite is None:
                return clone_on_fixed_input(original)
            return rewrite_transposed_convs(original, variant=rewrite, fold_batchnorm=fold, fuse_activation=fold,
                                            max_filters=max_filters)

        if args.keras_variants:
            rel = f"{variant}/model.keras"
            if not fresh(rel):
                model = model or variant_model()
                model.save(workdir / rel)
                done[rel] = 0.0
            plan["keras"].append({"artifact": f"keras:{variant}", "path": str(workdir / rel)})
        for target in targets:
            spec = TARGETS[target]
            rel = f"{variant}/{spec['file']}"
            out = workdir / rel
            if not fresh(rel):
                model = model or variant_model()
                log(f"converting {rel} ...")
                t0 = time.perf_counter()
                if target in ("fp32", "int8"):
                    convert_tflite(model, out, calib if target == "int8" else None)
                elif "format" not in spec:
                    convert_onnx(model, out, spec.get("nchw", False))
                else:
                    base_rel = f"{variant}/{TARGETS['onnx-nchw' if spec.get('nchw') else 'onnx']['file']}"
                    base = workdir / base_rel
                    if not fresh(base_rel):
                        convert_onnx(model, base, spec.get("nchw", False))
                        done[base_rel] = 0.0
                    quantize_onnx(base, out, calib, spec["format"], spec["act"], spec["reduce_range"],
                                  spec.get("nchw", False))
                done[rel] = round(time.perf_counter() - t0, 1)
                log(f"  {rel}: {done[rel]} s, {out.stat().st_size / 1e6:.1f} MB")
                stamp.write_text(json.dumps(old, indent=1))
            plan["artifacts"].append({"artifact": rel, "path": str(out), "variant": variant, "target": target})
    stamp.write_text(json.dumps(old, indent=1))
    return plan


def bundle_plan(args) -> dict:
    from segedge.contract.manifest import load_manifest, verify_artifact_file

    bundle = Path(args.bundle)
    manifest = load_manifest(bundle)
    plan = {"size": manifest.preprocess.height, "width": manifest.preprocess.width,
            "scaling": manifest.preprocess.scaling, "keras": [], "artifacts": []}
    model = args.model or manifest.source_model.get("path")
    if model and Path(model).is_file():
        plan["keras"].append({"artifact": "keras", "path": str(model)})
    else:
        log("no Keras model (--model RUN/model.keras): Keras rows and ratios are left out")
    reference = bundle / "reference.npz"
    if reference.is_file():
        plan["inputs"] = str(reference)
    for name, info in manifest.artifacts.items():
        path = bundle / info.file
        verify_artifact_file(path, info)
        plan["artifacts"].append({"artifact": info.file, "path": str(path), "variant": "bundle", "target": name})
    return plan


def add_also(plan: dict, files: list[str]) -> None:
    """Extra artifact files timed beside the plan's (an A/B of two exports in one run)."""
    for text in files:
        path = Path(text)
        if not path.is_file():
            raise SystemExit(f"error: --also {text}: no such file")
        plan["artifacts"].append({"artifact": f"also:{path.parent.name}/{path.name}", "path": str(path),
                                  "variant": "also", "target": path.suffix.lstrip(".")})


# --------------------------------------------------------------------------- timing (worker side)

def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


class _Keras:
    def __init__(self, path: str, mode: str) -> None:
        import keras
        import tensorflow as tf

        import segedge.export.subpixel  # noqa: F401  (registers DepthToSpace for load_model)

        self.model = keras.models.load_model(path, compile=False)
        self.mode = mode
        self.fixed = self.model.inputs[0].shape[0]  # `.input` is a one-element list in a trained model
        if mode != "predict":
            self.fn = tf.function(lambda x: self.model(x, training=False), jit_compile=(mode == "xla"),
                                  reduce_retracing=True)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, float]:
        if self.fixed not in (None, len(batch)):
            outs = [self.run(batch[i : i + 1])[0] for i in range(len(batch))]
            return np.concatenate(outs), 0.0
        t0 = time.perf_counter()
        if self.mode == "predict":
            out = self.model.predict(batch, batch_size=len(batch), verbose=0)
        else:
            out = self.fn(batch).numpy()
        return out, time.perf_counter() - t0


class _Artifact:
    def __init__(self, path: str, threads: int) -> None:
        from segedge.contract.runtime import open_backend

        self.backend = open_backend(path, threads=threads)
        shape = self.backend.input.shape
        self.fixed = shape[0] if shape and shape[0] != -1 else None

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, float]:
        b = self.backend
        tensor = b.prepare(batch)
        if self.fixed is not None and self.fixed != len(tensor):
            invoke, outs = 0.0, []
            for i in range(len(tensor)):
                t0 = time.perf_counter()
                raw = b.invoke(tensor[i : i + 1])
                invoke += time.perf_counter() - t0
                outs.append(b.finish(raw))
            return np.concatenate(outs), invoke
        t0 = time.perf_counter()
        raw = b.invoke(tensor)
        invoke = time.perf_counter() - t0
        return b.finish(raw), invoke


def worker(plan_path: str) -> None:
    job = json.loads(Path(plan_path).read_text())
    threads = job["threads"]
    _quiet_tf()
    rows = []
    keras_items = []
    if job["keras"] and job["keras_modes"]:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        for entry in job["keras"]:
            for mode in job["keras_modes"]:
                keras_items.append(({"artifact": entry["artifact"], "runtime": f"keras-{mode}",
                                     "variant": entry["artifact"].partition(":")[2] or "original",
                                     "target": "keras-fp32"}, _Keras(entry["path"], mode)))
    art_items = [({"artifact": a["artifact"], "runtime": None, "variant": a["variant"], "target": a["target"]},
                  _Artifact(a["path"], threads)) for a in job["artifacts"]]
    for meta, item in art_items:
        meta["runtime"] = item.backend.runtime.value
        meta["bytes"] = Path(item.backend.path).stat().st_size
        meta["input_dtype"] = item.backend.input.dtype
    items = keras_items + art_items
    size, width = job["size"], job.get("width", job["size"])
    if job.get("inputs"):
        pixels = np.load(job["inputs"])["inputs"]
        pixels = np.concatenate([pixels] * (max(job["batches"]) // len(pixels) + 1))
    else:
        pixels = realistic_images(max(job["batches"]), size, job["seed"] + 7)
    assert pixels.shape[1:3] == (size, width), pixels.shape
    runs, rounds, warmup = job["runs"], job["rounds"], job["warmup"]
    per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    for batch_size in job["batches"]:
        batch = scale(pixels[:batch_size], job["scaling"])
        reference = None
        totals: list[list[float]] = [[] for _ in items]
        invokes: list[list[float]] = [[] for _ in items]
        agree: list[float | None] = [None] * len(items)
        for i, (meta, item) in enumerate(items):
            for w in range(max(warmup, 1)):
                out, _ = item.run(batch)
                if w == 0:
                    if reference is None and meta["artifact"] == "keras":
                        reference = out.argmax(-1)
                    if reference is not None:
                        agree[i] = float((out.argmax(-1) == reference).mean())
        load_start = os.getloadavg()[0]
        log(f"threads {threads} batch {batch_size}: timing {len(items)} rows x {runs} runs in {rounds} rounds")
        for n in per_round:
            for i, (_, item) in enumerate(items):
                for _ in range(n):
                    t0 = time.perf_counter()
                    _, inv = item.run(batch)
                    totals[i].append(time.perf_counter() - t0)
                    invokes[i].append(inv)
        for i, (meta, _) in enumerate(items):
            ms = [t * 1e3 for t in totals[i]]
            row = {**meta, "batch": batch_size, "threads": threads,
                   "p50_ms": round(statistics.median(ms), 3), "p90_ms": round(_percentile(ms, 90), 3),
                   "mean_ms": round(statistics.fmean(ms), 3), "min_ms": round(min(ms), 3), "runs": len(ms),
                   "agree": agree[i], "load1_start": round(load_start, 2), "load1_end": round(os.getloadavg()[0], 2)}
            if not meta["runtime"].startswith("keras"):
                row["invoke_p50_ms"] = round(statistics.median(invokes[i]) * 1e3, 3)
            if job.get("raw"):  # --isolate: the driver pools the samples of every round's process
                row["samples_ms"], row["invokes_ms"] = ms, [t * 1e3 for t in invokes[i]]
            rows.append(row)
    Path(job["out"]).write_text(json.dumps(rows))


# --------------------------------------------------------------------------- driver

def wait_for_quiet(max_load: float | None, max_wait: float) -> None:
    """On a shared machine: give other jobs a chance to finish before timing (never fails)."""
    if max_load is None:
        return
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        log(f"load average {os.getloadavg()[0]:.2f} >= {max_load}: waiting")
        time.sleep(15)


def run_worker(job: dict, job_path: Path, threads: int) -> list[dict]:
    job_path.write_text(json.dumps(job))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, __file__, "--worker", str(job_path)], check=True, env=env)
    return json.loads(Path(job["out"]).read_text())


def isolated_rows(plan: dict, args, tmp: str) -> list[dict]:
    """--isolate: every row in a process of its own, rows alternating round by round.

    With 2 threads on a 2-core machine, the runtimes sharing one worker disturb each other:
    onnxruntime's and XNNPACK's idle pool threads spin for a while after a run, on the core the
    next row needs. Measured: the same ORT int8 model at 5.9-6.2 ms p50 in the shared worker and
    4.4 ms alone. Argmax agreement needs the Keras output in the same process, so it is left out.
    """
    units = [{"keras": [entry], "keras_modes": [mode], "artifacts": []}
             for entry in plan["keras"] for mode in csv_list(args.keras)]
    units += [{"keras": [], "keras_modes": [], "artifacts": [a]} for a in plan["artifacts"]]
    per_round = [args.runs // args.rounds + (1 if r < args.runs % args.rounds else 0) for r in range(args.rounds)]
    pooled: dict[tuple, dict] = {}
    for threads in args.threads:
        for n in per_round:
            wait_for_quiet(args.max_load, args.max_wait)
            for index, unit in enumerate(units):
                job = {**plan, **unit, "threads": threads, "batches": args.batches, "runs": n, "rounds": 1,
                       "warmup": args.warmup, "seed": args.seed, "raw": True,
                       "out": str(Path(tmp) / f"rows_{threads}_{index}.json")}
                for row in run_worker(job, Path(tmp) / f"job_{threads}_{index}.json", threads):
                    key = (row["artifact"], row["runtime"], row["batch"], threads)
                    into = pooled.setdefault(key, {**row, "samples_ms": [], "invokes_ms": [],
                                                   "load1_start": row["load1_start"]})
                    into["samples_ms"] += row["samples_ms"]
                    into["invokes_ms"] += row["invokes_ms"]
                    into["load1_end"] = row["load1_end"]
    rows = []
    for row in pooled.values():
        ms, invokes = row.pop("samples_ms"), row.pop("invokes_ms")
        row.update({"p50_ms": round(statistics.median(ms), 3), "p90_ms": round(_percentile(ms, 90), 3),
                    "mean_ms": round(statistics.fmean(ms), 3), "min_ms": round(min(ms), 3), "runs": len(ms),
                    "isolated": True})
        if "invoke_p50_ms" in row:
            row["invoke_p50_ms"] = round(statistics.median(invokes), 3)
        if not row["runtime"].startswith("keras"):
            row["agree"] = None
        rows.append(row)
    return rows


def add_ratios(rows: list[dict]) -> None:
    base = {(r["batch"], r["threads"]): r["p50_ms"] for r in rows
            if r["artifact"] == "keras" and r["runtime"] == "keras-predict"}
    for row in rows:
        ref = base.get((row["batch"], row["threads"]))
        row["x_keras"] = round(row["p50_ms"] / ref, 3) if ref else None


def print_table(rows: list[dict], out=sys.stdout) -> None:
    head = ["artifact", "runtime", "batch", "threads", "p50 ms", "p90 ms", "min ms", "invoke p50", "x keras", "agree",
            "MB"]
    lines = []
    for r in sorted(rows, key=lambda r: (r["batch"], r["threads"], r["p50_ms"])):
        mb = f"{r['bytes'] / 1e6:.1f}" if r.get("bytes") else ""
        lines.append([r["artifact"], r["runtime"], str(r["batch"]), str(r["threads"]), f"{r['p50_ms']:.1f}",
                      f"{r['p90_ms']:.1f}", f"{r['min_ms']:.1f}",
                      f"{r['invoke_p50_ms']:.1f}" if "invoke_p50_ms" in r else "",
                      f"{r['x_keras']:.3f}" if r.get("x_keras") else "",
                      f"{r['agree']:.4f}" if r.get("agree") is not None else "", mb])
    print_markdown_table(head, lines, out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segedge-bench-") as tmp:
        if args.synthetic:
            workdir = Path(args.workdir) if args.workdir else Path(tmp) / "synthetic"
            plan = build_synthetic(args, workdir)
            if args.build_only:
                log(f"built {len(plan['artifacts'])} artifacts in {workdir}")
                return 0
        else:
            plan = bundle_plan(args)
        add_also(plan, csv_list(args.also))
        only = csv_list(args.only)
        if only:
            plan["artifacts"] = [a for a in plan["artifacts"] if any(s in a["artifact"] for s in only)]
        rows: list[dict] = isolated_rows(plan, args, tmp) if args.isolate else []
        for threads in [] if args.isolate else args.threads:
            job = {**plan, "threads": threads, "batches": args.batches, "runs": args.runs, "rounds": args.rounds,
                   "warmup": args.warmup, "seed": args.seed, "keras_modes": csv_list(args.keras),
                   "out": str(Path(tmp) / f"rows_{threads}.json")}
            wait_for_quiet(args.max_load, args.max_wait)
            log(f"worker: {threads} thread(s), {len(plan['artifacts'])} artifacts + "
                f"{len(plan['keras']) * len(job['keras_modes'])} Keras rows")
            rows.extend(run_worker(job, Path(tmp) / f"job_{threads}.json", threads))
    add_ratios(rows)
    load = os.getloadavg()
    mode = "one process per row and round" if args.isolate else "one process per thread count"
    print(f"\n{plan['size']}x{plan.get('width', plan['size'])}, runs {args.runs} after {args.warmup} warmup, "
          f"{args.rounds} interleaved rounds ({mode}); load avg {load[0]:.2f}/{load[1]:.2f}; "
          f"x keras = p50 / Keras fp32 predict p50 at the same batch and threads\n")
    print_table(rows)
    if args.json_path:
        meta = {"size": plan["size"], "runs": args.runs, "warmup": args.warmup, "rounds": args.rounds,
                "loadavg": load, "seconds": round(time.perf_counter() - started, 1), "cpu_count": os.cpu_count()}
        Path(args.json_path).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        log(f"wrote {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
