"""Which optional extra provides which module, and one check that names the extra to install.

segedge's commands live in one package, but each stage's libraries come from an
extra (``pyproject.toml``): a Pi installs ``segedge[edge]`` and has no
TensorFlow. A command checks its extra *before* any slow work, so a missing
library is one line naming ``pip install "segedge[EXTRA]"`` (exit 6), never an
``ImportError`` traceback minutes into a run.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable, Sequence
from types import ModuleType

from segedge.util.errors import MissingExtraError

# extra -> the top-level modules a command that needs it imports (the pip names are in pyproject.toml)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "edge": ("ai_edge_litert", "onnxruntime"),
    "train": ("tensorflow", "keras"),
    "export": ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"),
    "bench": ("matplotlib",),
    "camera": ("cv2",),
}

# runtime -> modules of which ONE must be installed to run its artifacts (LiteRT first, tflite-runtime accepted)
RUNTIME_MODULES: dict[str, tuple[str, ...]] = {"tflite": ("ai_edge_litert", "tflite_runtime"), "onnx": ("onnxruntime",)}

# module -> the smallest extra that installs it; names the extra when an import fails unchecked
MODULE_EXTRA: dict[str, str] = {
    "tensorflow": "train", "keras": "train", "tf2onnx": "export", "onnx": "export", "sympy": "export",
    "onnxruntime": "edge", "ai_edge_litert": "edge", "tflite_runtime": "edge",
    "matplotlib": "bench", "cv2": "camera",
}


def installed(module: str) -> bool:
    """True when ``module`` can be found, without importing it (TensorFlow takes seconds to import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package or a half-removed install
        return False


def missing_modules(modules: Sequence[str]) -> list[str]:
    return [module for module in modules if not installed(module)]


def require_extra(extra: str, modules: Sequence[str] | None = None) -> None:
    """Fail with ``MissingExtraError`` (exit 6) unless every module of ``extra`` (or just ``modules``) exists."""
    missing = missing_modules(modules if modules is not None else EXTRA_MODULES[extra])
    if missing:
        raise MissingExtraError(", ".join(missing), extra)


def require_runtimes(runtimes: Iterable[str], extra: str = "edge") -> None:
    """Fail with one line unless each runtime ("tflite", "onnx") has an installed interpreter module."""
    missing = [modules[0] for modules in (RUNTIME_MODULES[r] for r in dict.fromkeys(runtimes) if r in RUNTIME_MODULES)
               if not any(installed(m) for m in modules)]
    if missing:
        raise MissingExtraError(", ".join(missing), extra)


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or fail with one line naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra) from exc


def extra_for(exc: ImportError) -> MissingExtraError | None:
    """A ``MissingExtraError`` for an import that failed unchecked, when the module belongs to an extra."""
    name = (exc.name or "").split(".")[0]
    extra = MODULE_EXTRA.get(name)
    return MissingExtraError(name, extra) if extra else None
