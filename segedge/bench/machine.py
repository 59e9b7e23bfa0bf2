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


def installed_version(*distributions: str) -> str | None:
    """The version of the first of ``distributions`` that is installed (package metadata; nothing imported)."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def package_versions() -> dict[str, str]:
    versions = {name: installed_version(name) for name in PACKAGES}
    return {name: version for name, version in versions.items() if version is not None}


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


# --- heat: a Pi 4 slows itself down when hot, so its numbers need the temperature beside them ---

SYSFS_ENV = "SEGEDGE_SYSFS_ROOT"  # tests (and odd boards) point this at another /sys tree
# vcgencmd get_throttled bits (Raspberry Pi firmware documentation)
THROTTLE_BITS = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now",
                 3: "soft temperature limit now", 16: "under-voltage has occurred",
                 17: "frequency capping has occurred", 18: "throttling has occurred",
                 19: "soft temperature limit has occurred"}


def cpu_temperatures(sys_root: str | os.PathLike[str] | None = None) -> dict[str, float]:
    """Thermal zone -> degrees Celsius from ``/sys/class/thermal/thermal_zone*/temp`` (millidegrees).

    Keyed by the zone's ``type`` (``cpu-thermal`` on a Pi) or its folder name;
    empty where the board exposes none (most containers and VMs).
    """
    from pathlib import Path

    root = Path(sys_root or os.environ.get(SYSFS_ENV) or "/sys") / "class" / "thermal"
    temps: dict[str, float] = {}
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            value = int((zone / "temp").read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            continue
        try:
            name = (zone / "type").read_text(encoding="ascii").strip() or zone.name
        except OSError:
            name = zone.name
        temps[name if name not in temps else zone.name] = value / 1000.0
    return temps


def cpu_temperature(sys_root: str | os.PathLike[str] | None = None) -> float | None:
    """The hottest zone in °C (on a Pi the one zone is the SoC), or None where none is readable."""
    temps = cpu_temperatures(sys_root)
    return max(temps.values()) if temps else None


def throttled(vcgencmd: str | None = None, timeout: float = 5.0) -> dict[str, object] | None:
    """``vcgencmd get_throttled`` decoded (Raspberry Pi firmware); None where the tool is absent or fails."""
    import shutil
    import subprocess

    tool = vcgencmd or shutil.which("vcgencmd")
    if not tool:
        return None
    try:
        proc = subprocess.run([tool, "get_throttled"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    _, _, value = proc.stdout.strip().partition("=")
    try:
        bits = int(value, 16)
    except ValueError:
        return None
    return {"raw": f"0x{bits:x}", "flags": [text for bit, text in THROTTLE_BITS.items() if bits >> bit & 1]}


def heat_state(sys_root: str | os.PathLike[str] | None = None) -> dict[str, object]:
    """Temperature (°C or None) and throttling (decoded or None): read before and after each artifact."""
    return {"temp_c": cpu_temperature(sys_root), "throttled": throttled()}


def heat_notes(rows: list[dict[str, object]]) -> list[str]:
    """report.md's word on heat: temperatures before -> after each row, and any throttling seen."""
    temps = [f"{r['artifact']}/{r['threads']}t {r['temp_before_c']:.1f}->{r['temp_after_c']:.1f}"
             for r in rows if r.get("temp_before_c") is not None and r.get("temp_after_c") is not None]
    notes = [f"CPU temperature (°C) before->after each row: {', '.join(temps)}"] if temps else []
    throttling = sorted({flag for r in rows for key in ("throttled_before", "throttled_after")
                         for flag in ((r.get(key) or {}).get("flags") or []) if flag.endswith("now")})
    if throttling:
        notes.append(f"the board reported {', '.join(throttling)} during the bench (vcgencmd get_throttled): "
                     "latencies are slower than a cool board's; add --cooldown or a heatsink")
    return notes


# --- disturbance: a busy machine makes latencies meaningless, and the report must say so ---

SLOWER_MARGIN = 1.10  # more threads may be a little slower on a tiny model (thread start-up); not 10 % slower


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (runnable processes, system-wide), or None where unreadable."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


# Rows whose thread counts say nothing of a busy machine: TensorFlow's own thread pools cost a small model
# more than a second thread gives back, idle or not (a 96 px model's Keras row on an idle 2-core EPYC:
# 6.54 ms at 1 thread, 7.74 ms at 2; the int8 rows of the same run 0.77 -> 0.50 ms).
THREADS_SIGN_SKIPS = frozenset({"keras"})


def timing_warnings(rows: list[dict[str, object]], cores: int | None,
                    loads: dict[str, list[float] | None] | None = None) -> list[str]:
    """Why the timings of this run may be disturbed; empty when nothing says so.

    Two signs, each from numbers the run already has: a 1-minute load average
    above the core count (other processes wanted more CPU than there is, so
    ours waited), read before and after the run and around each row; and, for
    one artifact, more threads measured slower than fewer (by more than
    ``SLOWER_MARGIN``), which an idle machine with those cores does not do
    (the Keras row aside: ``THREADS_SIGN_SKIPS``).
    """
    warnings = []
    readings = [(f"{when} the run", (values or [None])[0]) for when, values in (loads or {}).items()]
    for row in rows:
        for key, when in (("load_before", "before"), ("load_after", "after")):
            readings.append((f"{when} {row.get('artifact')} at {row.get('threads')} threads", row.get(key)))
    busy = [(where, value) for where, value in readings if value is not None and cores and value > cores]
    if busy:
        where, value = max(busy, key=lambda item: item[1])
        warnings.append(f"load average {value:.2f} ({where}; {len(busy)} reading(s) in all) is above the machine's "
                        f"{cores} cores: other processes competed for the CPU, so latencies are slower and noisier "
                        "than on an idle machine; rerun when it is idle")
    by_artifact: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        p50, threads = row.get("p50_ms"), row.get("threads")
        if str(row.get("artifact")) in THREADS_SIGN_SKIPS:
            continue
        if isinstance(p50, (int, float)) and isinstance(threads, int) and not row.get("error"):
            by_artifact.setdefault(str(row.get("artifact")), []).append((threads, float(p50)))
    slower = []  # one line for all of them: a busy machine slows every artifact, and six warnings read as six faults
    for artifact, measured in by_artifact.items():
        measured.sort()
        for k, (threads, p50) in enumerate(measured):
            fewer = next(((t, p) for t, p in measured[:k] if t < threads and p50 > SLOWER_MARGIN * p), None)
            if fewer is not None:
                slower.append(f"{artifact} at {threads} threads {p50:.2f} ms is {p50 / fewer[1]:.1f}x its "
                              f"{fewer[0]}-thread {fewer[1]:.2f} ms")
    if slower:
        warnings.append("more threads were slower than fewer (" + "; ".join(slower) + "), which an idle machine "
                        "with those cores does not do: it was probably busy (or has fewer free cores than threads); "
                        "rerun when it is idle")
    return warnings
