"""Import an optional dependency or say which extra provides it."""

from __future__ import annotations

import importlib
from types import ModuleType

from segedge.errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra) from exc
