"""Pre-processing per frame, before and after the pixel-input contract (uint8 in, scaling in the stem), levels kept.

Before: resize to the model size, scale to float (x = p / 127.5 - 1), then quantize
into the int8 model's input (uint8, scale 2/255, zero point 127: what TFLite chose
from a [-1, 1] calibration range). For float models, stop after scaling.
After: resize, then hand the uint8 pixels to a uint8 input with scale 1 and zero
point 0 as they are. A float model gets them cast to float32.

Both paths run the edge's own functions (``segedge.contract.preprocess``,
``segedge.contract.runtime``) on a 500x375 photo, N frames, and report the median.

    python benchmarks/bench_input_exact.py [--size 224] [--frames 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image

from segedge.contract.preprocess import PreprocessSpec, resize_uint8, scale_pixels
from segedge.contract.runtime import TensorSpec, model_values, quantize, typed_input

OLD_INT8 = TensorSpec("image", (1, -1, -1, 3), "uint8", 2.0 / 255.0, 127)
NEW_INT8 = TensorSpec("image", (1, -1, -1, 3), "uint8", 1.0, 0)
FLOAT = TensorSpec("image", (1, -1, -1, 3), "float32")


def median_ms(step, frames: int) -> float:
    samples = []
    for _ in range(frames):
        start = time.perf_counter_ns()
        step()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8), "RGB")
    scaled = PreprocessSpec(args.size, args.size, "mobilenet")
    pixels_in = PreprocessSpec(args.size, args.size, "mobilenet", input="pixels")

    def before_int8():
        pixels, _ = resize_uint8(photo, scaled)
        return quantize(scale_pixels(pixels[None], scaled), OLD_INT8)

    def after_int8():
        pixels, _ = resize_uint8(photo, pixels_in)
        return typed_input(model_values(pixels[None], pixels_in, None), NEW_INT8)

    def before_float():
        pixels, _ = resize_uint8(photo, scaled)
        return scale_pixels(pixels[None], scaled)

    def after_float():
        pixels, _ = resize_uint8(photo, pixels_in)
        return typed_input(model_values(pixels[None], pixels_in, None), FLOAT)

    def resize_only():
        return resize_uint8(photo, scaled)

    rows = [("resize only (both)", resize_only), ("int8 before: scale + quantize", before_int8),
            ("int8 after: pixels as they are", after_int8), ("float before: scale", before_float),
            ("float after: pixels cast to float32", after_float)]
    print(f"pre-processing per frame, 500x375 -> {args.size}x{args.size}, median of {args.frames} frames")
    for label, step in rows:
        step()  # warm-up
        print(f"  {label:<38} {median_ms(step, args.frames):7.3f} ms")
    levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    old = quantize(scale_pixels(levels, scaled), OLD_INT8)
    new = typed_input(model_values(levels, pixels_in, None), NEW_INT8)
    print(f"distinct input codes for the 256 levels: before {len(np.unique(old))}, after {len(np.unique(new))}")


if __name__ == "__main__":
    main()
