"""What machine the numbers came from: latency figures mean nothing without it.

Read from ``/proc/cpuinfo`` and package metadata only; no runtime is imported
here (versions come from ``importlib.metadata``), so asking costs nothing.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

# Flags that decide how fast int8 and fp32 kernels can be (x86 and Arm).
INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "neon")
PACKAGES = ("numpy", "pillow", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow-cpu",
            "tensorflow", "keras", "matplotlib")


def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, object]:
    """CPU model name and the SIMD flags that matter, from the kernel's own description."""
    model, flags = None, set()
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if model is None and key in ("model name", "hardware", "cpu model", "processor") \
                        and not value.strip().isdigit():
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"cpu_model": model or platform.processor() or platform.machine(),
            "cpu_flags": [f for f in INTERESTING_FLAGS if f in flags]}


def usable_cores() -> int:
    """Cores this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def machine_info() -> dict[str, object]:
    return {
        **cpu_info(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "versions": package_versions(),
    }
