"""Is training input-bound? tf.data throughput vs the model's train-step throughput.

Measures, at the same batch size and image size:

* ``input (cached)``: batches out of ``segedge.train.pipeline.train_dataset``
  with the resized arrays in memory (every epoch after reading the data);
* ``input (from disk)``: the same with ``--cache none`` (decode + resize each
  time: the worst case, when the data does not fit in memory);
* ``read + check``: the up-front pass that reads, checks and resizes every pair;
* ``train step``: ``model.train_on_batch`` on one batch after a traced warm-up.

The input pipeline keeps up when its images/s exceed the train step's. With no
DATA, a synthetic VOC folder is generated in a temporary directory.

    python benchmarks/bench_input_pipeline.py
    python benchmarks/bench_input_pipeline.py /path/to/VOC2012 --image-size 224 --batch-size 32 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, help="VOC folder (default: generate a synthetic one)")
    parser.add_argument("--images", type=int, default=96, help="synthetic images when DATA is not given (96)")
    parser.add_argument("--image-size", type=int, default=96, help="model input size, multiple of 32 (96)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size for both measurements (16)")
    parser.add_argument("--steps", type=int, default=8, help="timed batches / train steps (8)")
    parser.add_argument("--preset", default="default", choices=["default", "seed"], help="recipe (default)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def time_batches(dataset, steps: int) -> float:
    """Seconds for ``steps`` batches after one warm-up batch."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return time.perf_counter() - start


def measure(args: argparse.Namespace, root: Path, workdir: Path) -> list[dict]:
    from segedge.train.config import make_config
    from segedge.train.fit import build_compiled
    from segedge.train.pipeline import load_training_data, train_dataset

    batch = args.batch_size
    rows = []
    # enough epochs that the timed batches never run out
    base = make_config(root, workdir / "run", args.preset, image_size=args.image_size, batch_size=batch,
                       epochs=args.steps + 2)
    for label, cache in (("input (cached)", "memory"), ("input (from disk)", "none")):
        config = base.replace(cache=cache)
        start = time.perf_counter()
        data = load_training_data(config)
        read = time.perf_counter() - start
        if cache == "memory":
            count = len(data.train) + len(data.val)
            rows.append({"stage": "read + check", "images_per_s": count / read,
                         "ms_per_batch": 1000 * read / count * batch})
        seconds = time_batches(train_dataset(data.train, config), args.steps)
        rows.append({"stage": label, "images_per_s": args.steps * batch / seconds,
                     "ms_per_batch": 1000 * seconds / args.steps})
    import keras

    keras.utils.set_random_seed(0)
    model, _ = build_compiled(base, None)
    x, y = next(iter(train_dataset(data.train, base)))
    model.train_on_batch(x, y)  # trace
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    rows.append({"stage": "train step", "images_per_s": args.steps * batch / seconds,
                 "ms_per_batch": 1000 * seconds / args.steps})
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segedge-bench-input-") as tmp:
        root = args.data
        if root is None:
            from segedge.data.synth import SynthConfig, generate

            root = generate(Path(tmp) / "voc", SynthConfig(images=args.images, size=args.image_size, seed=0))
        rows = measure(args, root, Path(tmp))
    step = next(r for r in rows if r["stage"] == "train step")["images_per_s"]
    print(f"\nimage size {args.image_size}, batch {args.batch_size}, {args.steps} timed batches, preset {args.preset}")
    print(f"{'stage':<20} {'images/s':>10} {'ms/batch':>10} {'x train step':>13}")
    for row in rows:
        print(f"{row['stage']:<20} {row['images_per_s']:>10.1f} {row['ms_per_batch']:>10.1f} "
              f"{row['images_per_s'] / step:>13.1f}")
    cached = next(r for r in rows if r["stage"] == "input (cached)")["images_per_s"]
    print("verdict:", "input keeps up with the model" if cached >= step else "INPUT-BOUND: the model waits for data")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
