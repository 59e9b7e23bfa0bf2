"""``segedge doctor``: can this machine run the edge, and if not, what is the one fix?

A Pi user's first command. Each runtime is imported AND runs a tiny shipped
model (``doctor_models/``: y = 2x + 1 on a float32 [1, 4] input) in its own
subprocess, because a wheel built for a newer CPU dies with SIGILL
(onnxruntime 1.21.0 on a Pi 4's Cortex-A72) and that must become one line
naming the runtime and the fix, not a dead shell. The rest is what decides
speed on a small board: cores, memory, camera devices, CPU temperature and
throttling. Nothing here imports a runtime in this process.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import segedge
from segedge.bench.machine import cpu_temperatures, installed_version, throttled, usable_cores
from segedge.util.optional import installed

MODELS = Path(__file__).resolve().parent / "doctor_models"
EXPECTED = [1.0, 3.0, 5.0, 7.0]  # 2 * [0, 1, 2, 3] + 1
PROBE_TIMEOUT = 120.0
ARMV7_LINE = ("32-bit Raspberry Pi OS (armv7l): no LiteRT wheels exist for it; install the 64-bit "
              "Raspberry Pi OS (aarch64)")
EDGE_FIX = 'pip install "segedge[edge]"'
# runtime -> (modules tried in order, pip distributions to ask the version of, model file)
RUNTIMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "tflite": (("ai_edge_litert", "tflite_runtime"), ("ai-edge-litert", "tflite-runtime"), "tiny.tflite"),
    "onnx": (("onnxruntime",), ("onnxruntime",), "tiny.onnx"),
}

# Runs in the child: import the runtime, run the tiny model, print one JSON line. Exit 3 = not installed.
PROBE = r"""
import json, sys
import numpy as np
runtime, model = sys.argv[1], sys.argv[2]
x = np.arange(4, dtype=np.float32)[None]
try:
    if runtime == "onnx":
        import onnxruntime as ort
        module = "onnxruntime"
    else:
        try:
            from ai_edge_litert.interpreter import Interpreter
            module = "ai_edge_litert"
        except ImportError:
            from tflite_runtime.interpreter import Interpreter
            module = "tflite_runtime"
except ImportError as exc:
    print(json.dumps({"missing": str(exc)}))
    sys.exit(3)
if runtime == "onnx":
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    y = session.run(None, {session.get_inputs()[0].name: x})[0]
else:
    interpreter = Interpreter(model_path=model, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
print(json.dumps({"module": module, "output": [float(v) for v in y.ravel()]}))
"""


@dataclass
class Check:
    """One line of the report: what was checked, ok/warn/fail/info, and the fix when it is not ok."""

    name: str
    status: str  # ok | warn | fail | info | missing (a runtime that is not installed)
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -> {self.fix}" if self.fix else ""
        return f"{self.status:<5} {self.name:<12} {self.detail}{fix}"


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def runtime_checks(self) -> list[Check]:
        return [c for c in self.checks if c.name in RUNTIMES]


def platform_check(machine: str | None = None) -> Check:
    """Python and the CPU architecture; a 32-bit Arm OS cannot run the edge at all."""
    machine = machine or platform.machine()
    detail = f"Python {sys.version.split()[0]} on {platform.system()} {machine}"
    if machine.lower().startswith("armv7") or machine.lower() == "armv6l":
        return Check("platform", "fail", detail, ARMV7_LINE)
    return Check("platform", "ok", detail)


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def crash_fix(runtime: str, version: str | None, signame: str) -> str:
    """What to do when a runtime wheel dies on this CPU."""
    if runtime == "onnx":
        if version == "1.21.0":
            return 'onnxruntime 1.21.0 is known to die on a Pi 4 (Cortex-A72): pip install "onnxruntime!=1.21.0"'
        return f'this onnxruntime wheel does not run on this CPU: pip install "onnxruntime!={version or "X.Y.Z"}"'
    return (f'this LiteRT wheel does not run on this CPU: pip install "ai-edge-litert!={version or "X.Y.Z"}" '
            "(or another version)")


def probe_runtime(runtime: str, timeout: float = PROBE_TIMEOUT, env: dict[str, str] | None = None) -> Check:
    """Import ``runtime`` and run its tiny model in a fresh process; a crash or hang is one line."""
    _modules, distributions, model = RUNTIMES[runtime]
    version = installed_version(*distributions)
    label = f"{distributions[0]} {version}" if version else distributions[0]
    try:
        proc = subprocess.run([sys.executable, "-c", PROBE, runtime, str(MODELS / model)], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return Check(runtime, "fail", f"{label}: hung running a tiny model (killed after {timeout:g} s)",
                     crash_fix(runtime, version, "timeout"))
    if proc.returncode < 0:
        signame = _signal_name(-proc.returncode)
        what = "illegal instruction: built for a newer CPU" if signame == "SIGILL" else "crashed"
        return Check(runtime, "fail", f"{label}: {signame} ({what}) running a tiny model",
                     crash_fix(runtime, version, signame))
    if proc.returncode == 3:
        return Check(runtime, "missing", "not installed", EDGE_FIX)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = ([line for line in proc.stderr.splitlines() if line.strip()] or ["no output"])[-1]
        return Check(runtime, "fail", f"{label}: failed running a tiny model (exit {proc.returncode}): {last}",
                     f"reinstall it: {EDGE_FIX}")
    output = result.get("output", [])
    if len(output) != len(EXPECTED) or any(abs(a - b) > 1e-5 for a, b in zip(output, EXPECTED, strict=False)):
        return Check(runtime, "fail", f"{label}: wrong answer from a tiny model ({output} != {EXPECTED})",
                     f"reinstall it: {EDGE_FIX}")
    detail = f"{label} ({result.get('module')}): imports and runs a tiny model"
    if runtime == "tflite":
        detail += ("; XNNPACK delegate active (LiteRT reported creating it)" if "XNNPACK" in proc.stderr
                   else "; XNNPACK not reported by the runtime (it may still be in use)")
    return Check(runtime, "ok", detail)


def memory_mb(meminfo: str = "/proc/meminfo") -> tuple[float, float] | None:
    """(total, available) MB from ``/proc/meminfo``; None elsewhere."""
    values: dict[str, float] = {}
    try:
        with open(meminfo, encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    values[key] = int(rest.split()[0]) * 1024 / 1e6
    except (OSError, ValueError, IndexError):
        return None
    if "MemTotal" not in values:
        return None
    return values["MemTotal"], values.get("MemAvailable", values["MemTotal"])


def camera_check(dev_glob: str = "/dev/video*") -> Check:
    devices = sorted(glob.glob(dev_glob))
    parts = [", ".join(devices) if devices else "no /dev/video* devices"]
    if installed("picamera2"):
        parts.append("picamera2 importable (--camera picam)")
    if not installed("cv2"):
        parts.append('OpenCV missing: pip install "segedge[camera]" for --camera')
    return Check("camera", "info", "; ".join(parts))


def heat_checks(sys_root: str | None = None) -> list[Check]:
    temps = cpu_temperatures(sys_root)
    checks = [Check("temperature", "info",
                    ", ".join(f"{name} {value:.1f} °C" for name, value in temps.items())
                    or "not readable here (no /sys/class/thermal zones)")]
    state = throttled()
    if state is None:
        checks.append(Check("throttling", "info", "vcgencmd not present (not a Raspberry Pi, or no firmware tools)"))
    else:
        now = [flag for flag in state["flags"] if flag.endswith("now")]  # type: ignore[union-attr]
        checks.append(Check("throttling", "warn" if now else "ok",
                            f"get_throttled={state['raw']}" + (f": {', '.join(state['flags'])}"  # type: ignore
                                                               if state["flags"] else ""),
                            "cool the board (heatsink, fan) or use a 5 V 3 A supply" if now else ""))
    return checks


def diagnose(machine: str | None = None, timeout: float = PROBE_TIMEOUT, sys_root: str | None = None) -> Diagnosis:
    """Every check, in the order a user reads them."""
    diagnosis = Diagnosis()
    platform_ok = platform_check(machine)
    diagnosis.checks.append(platform_ok)
    diagnosis.checks.append(Check("segedge", "info", f"{segedge.__version__} ({Path(segedge.__file__).parent})"))
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")  # LiteRT's XNNPACK line is INFO
    for runtime in RUNTIMES:
        diagnosis.checks.append(probe_runtime(runtime, timeout, env))
    cores = usable_cores()
    diagnosis.checks.append(Check("cores", "info", f"{cores} usable of {os.cpu_count()}"
                                  f" (bench default threads: 1,{cores})" if cores > 1 else f"{cores} usable"))
    memory = memory_mb()
    diagnosis.checks.append(Check("memory", "info", f"{memory[0]:.0f} MB total, {memory[1]:.0f} MB available"
                                  if memory else "not readable here"))
    diagnosis.checks.append(camera_check())
    diagnosis.checks.extend(heat_checks(sys_root))
    return diagnosis


def verdict(diagnosis: Diagnosis) -> str | None:
    """None when the edge can run here; else the one line (with the fix) that ``doctor`` exits with."""
    failures = diagnosis.failures
    if failures:
        first = failures[0]
        return f"{first.name}: {first.detail}; fix: {first.fix}" if first.fix else f"{first.name}: {first.detail}"
    runtimes = diagnosis.runtime_checks()
    if runtimes and all(c.status == "missing" for c in runtimes):
        return ""  # the caller raises MissingExtraError (exit 6)
    return None
