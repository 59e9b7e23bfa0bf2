"""How much does the bench harness add to what it measures?

Times the same artifact, in the same process, two ways: through the harness
that ``segedge bench`` uses (``bench_timing.time_invoke`` around
``backend.invoke``: set input, invoke, copy the output) and through a bare
loop over the runtime itself (``interpreter.invoke()`` on the same LiteRT
interpreter, or ``session.run()`` on the same onnxruntime session, so only the
harness differs; ``--fresh`` builds a second one instead). The two alternate
call by call (swapping order every call) so machine drift and other load hit
both alike.
Also reports pre-processing (scale + quantize) and post-processing (dequantize
+ argmax) time as a fraction of inference. The target: harness median within
5 % of the bare median for TFLite fp32.

    python benchmarks/bench_overhead.py BUNDLE [--artifact fp32] [--threads 1]
    python benchmarks/bench_overhead.py model_fp32.tflite --runs 50 --json out.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from segedge.bench.stats import NS_PER_MS, percentile
from segedge.bench.timing import logits_to_mask, time_invoke
from segedge.contract.manifest import REFERENCE_NAME, load_manifest
from segedge.contract.preprocess import PreprocessSpec, scale_pixels
from segedge.contract.runtime import OnnxBackend, TFLiteBackend, open_backend, tflite_interpreter_class


def resolve(target: Path, artifact: str) -> tuple[Path, PreprocessSpec | None, np.ndarray | None]:
    """Model file, the manifest's preprocessing (if a bundle) and a real input image (if any)."""
    if target.is_dir():
        manifest = load_manifest(target)
        if artifact not in manifest.artifacts:
            sys.exit(f"{target}: no artifact {artifact!r}; it has {', '.join(manifest.artifacts)}")
        image = None
        if (target / REFERENCE_NAME).is_file():
            with np.load(target / REFERENCE_NAME) as data:
                image = np.array(data["inputs"][:1])
        return target / manifest.artifacts[artifact].file, manifest.preprocess, image
    return target, None, None


def bare_call(backend, path: Path, threads: int, tensor: np.ndarray, fresh: bool):
    """A no-argument callable: one bare runtime call with the input already in place."""
    if isinstance(backend, TFLiteBackend):
        if fresh:
            interpreter = tflite_interpreter_class()(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        else:
            interpreter = backend._interpreter
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
        return interpreter.invoke
    if fresh:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    else:
        session = backend._session
    feed = {session.get_inputs()[0].name: tensor}
    return lambda: session.run(None, feed)


def interleaved(backend, call, tensor: np.ndarray, runs: int) -> tuple[list[int], list[int]]:
    """``runs`` harness samples and ``runs`` bare samples, alternating call by call."""
    harness, bare = [], []
    clock = time.perf_counter_ns
    for i in range(runs):
        for method in (("harness", "bare") if i % 2 == 0 else ("bare", "harness")):
            if method == "harness":
                harness += time_invoke(backend.invoke, tensor, 0, 1)
            else:
                start = clock()
                call()
                bare.append(clock() - start)
    return harness, bare


def stage_times(backend, spec: PreprocessSpec, image: np.ndarray, runs: int) -> tuple[float, float]:
    """Median ms of pre-processing (scale + prepare) and post-processing (finish + argmax)."""
    pre, post = [], []
    raw = backend.invoke(backend.prepare(scale_pixels(image, spec)))
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        backend.prepare(scale_pixels(image, spec))
        t1 = time.perf_counter_ns()
        logits_to_mask(backend.finish(raw)[0])
        t2 = time.perf_counter_ns()
        pre.append((t1 - t0) / NS_PER_MS)
        post.append((t2 - t1) / NS_PER_MS)
    return statistics.median(pre), statistics.median(post)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path, help="a bundle folder or a .tflite/.onnx file")
    parser.add_argument("--artifact", default="fp32", help="artifact name when TARGET is a bundle (default fp32)")
    parser.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls of each method before timing (default 5)")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per method (default 50)")
    parser.add_argument("--fresh", action="store_true",
                        help="bare loop on a second interpreter/session instead of the harness's own")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    path, spec, image = resolve(args.target, args.artifact)
    backend: TFLiteBackend | OnnxBackend = open_backend(path, threads=args.threads)
    height, width = (backend.input.shape[1:3] if not getattr(backend, "nchw", False)
                     else backend.input.shape[2:4])
    spec = spec or PreprocessSpec(height, width, "mobilenet")
    if image is None:
        image = np.random.default_rng(0).integers(0, 256, (1, spec.height, spec.width, 3), dtype=np.uint8)
    tensor = backend.prepare(scale_pixels(image, spec))
    call = bare_call(backend, path, args.threads, tensor, args.fresh)
    time_invoke(backend.invoke, tensor, args.warmup, 0)
    for _ in range(args.warmup):
        call()
    harness_ns, bare_ns = interleaved(backend, call, tensor, args.runs)
    harness_ms = percentile([v / NS_PER_MS for v in harness_ns], 50)
    bare_ms = percentile([v / NS_PER_MS for v in bare_ns], 50)
    pre_ms, post_ms = stage_times(backend, spec, image, max(10, args.runs))
    overhead = 100.0 * (harness_ms - bare_ms) / bare_ms
    figures = {
        "model": str(path), "runtime": backend.runtime.value, "threads": args.threads,
        "input": [spec.height, spec.width], "runs_per_method": args.runs,
        "bare_on": "second instance" if args.fresh else "same instance",
        "harness_p50_ms": harness_ms, "bare_p50_ms": bare_ms, "overhead_pct": overhead,
        "within_5_pct": abs(overhead) <= 5.0,
        "preprocess_ms": pre_ms, "postprocess_ms": post_ms,
        "preprocess_fraction": pre_ms / bare_ms, "postprocess_fraction": post_ms / bare_ms,
    }
    print(f"{path.name} ({backend.runtime.value}, {args.threads} thread(s), "
          f"{spec.height}x{spec.width}, {args.runs} runs per method, bare on the "
          f"{'second' if args.fresh else 'same'} instance)")
    print(f"{'measure':<34}{'ms':>10}{'vs bare':>10}")
    print(f"{'bare runtime call, p50':<34}{bare_ms:>10.3f}{'':>10}")
    print(f"{'bench harness, p50':<34}{harness_ms:>10.3f}{overhead:>+9.2f}%")
    print(f"{'pre-processing (scale+prepare)':<34}{pre_ms:>10.3f}{100 * pre_ms / bare_ms:>9.2f}%")
    print(f"{'post-processing (finish+argmax)':<34}{post_ms:>10.3f}{100 * post_ms / bare_ms:>9.2f}%")
    print(f"harness within 5 % of bare: {'yes' if figures['within_5_pct'] else 'NO'}")
    if args.json:
        from segedge.util import fileio
        fileio.write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
