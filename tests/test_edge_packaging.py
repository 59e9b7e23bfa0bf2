"""``pip install "segedge[edge]"`` must not pull in TensorFlow, Keras or tf2onnx.

Checked two ways: the ``edge`` (and ``camera``) extras in pyproject.toml,
followed through ``segedge[...]`` self-references, plus the core
dependencies every extra installs; and, for the packages those name that are
installed here, their own declared requirements, transitively (what pip
would resolve from them).
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
FORBIDDEN = re.compile(r"^(tensorflow([-_].*)?|tf[-_]?keras|keras([-_].*)?|tf2onnx)$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(requirement: str) -> tuple[str, list[str], str]:
    """'name[extra1,extra2] >=1; marker' -> (canonical name, extras, marker)."""
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"cannot parse requirement {requirement!r}")
    extras = [e.strip() for e in (match.group(2) or "").split(",") if e.strip()]
    marker = requirement.split(";", 1)[1].strip() if ";" in requirement else ""
    return _canonical(match.group(1)), extras, marker


def resolve_extras(project: dict, extras: list[str]) -> set[str]:
    """Names of every requirement the extras bring, self-references followed, core included."""
    own = _canonical(project["name"])
    optional = project.get("optional-dependencies", {})
    names, seen, todo = set(), set(), list(extras)
    for requirement in project.get("dependencies", []):
        names.add(_parse(requirement)[0])
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in optional:
            raise KeyError(f"pyproject.toml has no extra {extra!r}")
        for requirement in optional[extra]:
            name, sub_extras, _ = _parse(requirement)
            if name == own:
                todo.extend(sub_extras)
            else:
                names.add(name)
    return names


def installed_closure(names: set[str]) -> set[str]:
    """Names reachable through installed packages' unconditional (non-extra) requirements."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            dep, _, marker = _parse(requirement)
            if "extra" not in marker:
                todo.append(dep)
    return found


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]


def test_edge_extra_declares_no_tensorflow(project):
    names = resolve_extras(project, ["edge", "camera"])
    assert {"ai-edge-litert", "onnxruntime", "numpy", "pillow"} <= names
    assert not sorted(n for n in names if FORBIDDEN.match(n))


def test_edge_extra_requirements_pull_no_tensorflow_transitively(project):
    closure = installed_closure(resolve_extras(project, ["edge", "camera"]))
    assert not sorted(n for n in closure if FORBIDDEN.match(n))


def test_the_checker_catches_tensorflow_through_a_self_reference():
    project = {"name": "segedge", "dependencies": [],
               "optional-dependencies": {"edge": ["segedge[heavy]"], "heavy": ["tensorflow-cpu>=2; extra == 'x'"]}}
    names = resolve_extras(project, ["edge"])
    assert [n for n in names if FORBIDDEN.match(n)] == ["tensorflow-cpu"]
    assert FORBIDDEN.match("keras") and FORBIDDEN.match("tf-keras") and FORBIDDEN.match("tf2onnx")
    assert not FORBIDDEN.match("onnxruntime") and not FORBIDDEN.match("tensorboard-data")
