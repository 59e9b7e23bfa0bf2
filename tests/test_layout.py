"""The package layout as rules: which part may import which, no heavy imports on the device side, small modules.

``ls segedge/`` shows three kinds of package:

* the stages, run data -> train -> export -> edge -> bench (quant beside export, serve on top of
  edge, commands on top of all). A stage may import the stages before it that it needs, never
  one after it, so the edge install (LiteRT/onnxruntime, no TensorFlow) can ship ``edge`` alone.
* ``contract``: what defines and runs a bundle (manifest, metadata, reference set, pre-processing,
  upsampling, runtime, targets, classes, labels, metrics). export writes what it defines; edge and
  bench read it. It imports only ``util`` and itself, never a stage.
* ``util``: errors, output folders, atomic files, progress, plots, optional extras. It imports
  nothing of segedge but itself.

``cli.py`` is the top and may import anything. Every import is read with ``ast``: top-level ones
and those inside functions alike.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "segedge"
STAGES = ("data", "train", "export", "edge", "bench", "quant", "serve", "commands")
# the layers under every stage -> the layers each may import besides itself
LAYERS: dict[str, set[str]] = {"contract": {"util"}, "util": set()}
HEAVY = ("tensorflow", "keras", "tf2onnx", "tf_keras")
MAX_LINES = 350

# stage -> the stages it may import (besides itself and the shared base modules)
MAY_IMPORT: dict[str, set[str]] = {
    "data": set(),
    "train": {"data"},
    "export": {"data", "train"},
    "edge": {"data"},
    "bench": {"data", "edge"},
    "quant": {"data", "train", "export", "edge"},
    "serve": {"data", "edge"},  # segedge serve: the edge's Segmenter and camera pipeline behind HTTP
    "commands": {"data", "train", "export", "edge", "bench", "quant", "serve"},
}
# The one documented exception: the bench child's optional Keras row runs the source model, which needs
# TensorFlow, so it lives in train; bench imports it inside a function, only when TensorFlow is there.
EXCEPTIONS = {("segedge.bench.child", "segedge.train.keras_backend")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str, package: str) -> Iterator[str]:
    """Every module ``source`` imports, anywhere in it; ``from a import b`` yields ``a`` and ``a.b``.

    ``package`` is the package the source lives in, against which relative imports resolve.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def imports(path: Path) -> set[str]:
    name = module_name(path)
    return set(imports_in(path.read_text(), name if path.name == "__init__.py" else name.rpartition(".")[0]))


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[0] == "segedge" and parts[1] in STAGES else None


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[0] == "segedge" and parts[1] in LAYERS else None


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_walk_sees_imports_inside_functions_and_relative_ones():
    source = "import os\n\ndef f():\n    from segedge.export import bundle\n    from ..train import fit\n" \
             "    if True:\n        import keras.ops\n"
    found = set(imports_in(source, "segedge.edge"))
    assert found == {"os", "segedge.export", "segedge.export.bundle", "segedge.train", "segedge.train.fit",
                     "keras.ops"}


def test_stages_import_only_the_stages_before_them():
    wrong = []
    for path in modules():
        here = module_name(path)
        stage = stage_of(here)
        if stage is None:
            continue
        for target in imports(path):
            other = stage_of(target)
            if other is None or other == stage or other in MAY_IMPORT[stage]:
                continue
            if any(here == a and (target == b or target.startswith(b + ".")) for a, b in EXCEPTIONS):
                continue
            wrong.append(f"{here} ({stage}) imports {target} ({other})")
    assert not wrong, "\n".join(sorted(wrong))


def test_contract_and_util_import_no_stage_and_util_imports_no_contract():
    wrong = []
    for path in modules():
        here = module_name(path)
        layer = layer_of(here)
        if layer is None:
            continue
        for target in imports(path):
            if not target.startswith("segedge.") or target.split(".")[1] == "__version__":
                continue
            other = layer_of(target)
            if other == layer or other in LAYERS[layer]:
                continue
            wrong.append(f"{here} ({layer}) imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_only_the_packages_and_the_cli_lie_directly_under_segedge():
    """A new shared module goes into contract/ or util/, so ls segedge/ keeps showing the layout."""
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in {"__init__.py", "cli.py"})
    assert not loose, loose
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted([*STAGES, *LAYERS]), packages


def test_the_keras_exception_is_still_needed():
    """An exception nothing uses any more is a rule nobody enforces: remove it from EXCEPTIONS."""
    for here, target in EXCEPTIONS:
        path = PACKAGE / Path(*here.split(".")[1:]).with_suffix(".py")
        assert target in imports(path), (here, target)


@pytest.mark.parametrize("stage", ["edge", "bench", "serve"])
def test_device_side_never_imports_tensorflow(stage):
    heavy = [f"{module_name(p)} imports {t}" for p in sorted((PACKAGE / stage).rglob("*.py"))
             for t in imports(p) if t.split(".")[0] in HEAVY]
    assert not heavy, "\n".join(sorted(heavy))


def command_imports() -> set[tuple[str, str]]:
    """(command module, other command module) for every import of one command by another."""
    commands = {p.stem for p in (PACKAGE / "commands").glob("*.py") if not p.name.startswith("_")}
    found = set()
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        for target in imports(path):
            parts = target.split(".")
            if parts[:2] == ["segedge", "commands"] and len(parts) > 2 and parts[2] in commands:
                if parts[2] != path.stem:
                    found.add((module_name(path), ".".join(parts[:3])))
    return found


def test_a_command_never_imports_another_command():
    """Shared code for commands goes in an underscore module (not a command) or in the stage it belongs to."""
    wrong = command_imports()
    assert not wrong, "\n".join(f"{a} imports {b}" for a, b in sorted(wrong))


def test_no_module_is_over_the_size_limit():
    long = []
    for path in modules():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            long.append(f"{path.relative_to(PACKAGE.parent)}: {lines} lines")
    assert not long, f"over {MAX_LINES} lines (split by job):\n" + "\n".join(long)
