"""The measuring process bench starts for each (artifact, thread count), with a time limit.

A fresh interpreter per row keeps peak RSS and cold init time the row's own;
the limit keeps a hung runtime (a bad wheel, a deadlocked thread pool) from
hanging the whole bench: its row fails with "timed out after N s" instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import segedge
from segedge.bench.child import ChildJob

DEFAULT_CHILD_TIMEOUT = 1800.0  # seconds one measuring process may take: generous for a Pi, finite for a hang


def _child_env() -> dict[str, str]:
    """The child must import this very segedge (a checkout works without installing)."""
    env = dict(os.environ)
    root = str(Path(segedge.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def child_command(job_path: Path, result_path: Path) -> list[str]:
    """The measuring process's command line (one place, so a test can swap in a process that hangs)."""
    return [sys.executable, "-m", "segedge.bench.child", str(job_path), str(result_path)]


def run_child(job: ChildJob, workdir: Path, index: int, timeout: float = DEFAULT_CHILD_TIMEOUT) -> dict[str, Any]:
    """One measurement in a fresh interpreter; a crash or a hang becomes ``{"ok": false, "error": ...}``.

    A runtime that hangs (a bad wheel, a deadlocked thread pool) is killed
    after ``timeout`` seconds and fails its own row; the bench goes on.
    """
    job_path, result_path = workdir / f"job-{index}.json", workdir / f"result-{index}.json"
    job_path.write_text(json.dumps(job.to_dict()), encoding="utf-8")
    try:
        proc = subprocess.run(child_command(job_path, result_path), capture_output=True, text=True,
                              env=_child_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:g} s (killed; a hung runtime, or raise "
                                      "--child-timeout)"}
    if result_path.is_file():
        return json.loads(result_path.read_text(encoding="utf-8"))
    tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["no output"]
    return {"ok": False, "error": f"measuring process died (exit {proc.returncode}): {tail[0]}"}
