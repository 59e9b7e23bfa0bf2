"""The one table of export targets, read by export, edge and bench alike."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from segedge.util.errors import ConfigError


class Runtime(str, Enum):
    tflite = "tflite"
    onnx = "onnx"


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    dynamic = "dynamic"
    int8 = "int8"
    mixed = "mixed"  # int8 with some layers left in float (quant-report --int8-fallback); no export target


@dataclass(frozen=True)
class Target:
    name: str
    runtime: Runtime
    precision: Precision
    filename: str
    needs_calibration: bool
    description: str


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("fp32", Runtime.tflite, Precision.fp32, "model_fp32.tflite", False, "TFLite float32"),
        Target("fp16", Runtime.tflite, Precision.fp16, "model_fp16.tflite", False, "TFLite float16 weights"),
        Target("dynamic", Runtime.tflite, Precision.dynamic, "model_dynamic.tflite", False,
               "TFLite dynamic-range int8 weights"),
        Target("int8", Runtime.tflite, Precision.int8, "model_int8.tflite", True,
               "TFLite full integer int8 (uint8 input by default)"),
        Target("onnx", Runtime.onnx, Precision.fp32, "model_fp32.onnx", False, "ONNX float32 (tf2onnx)"),
        Target("onnx-int8", Runtime.onnx, Precision.int8, "model_int8.onnx", True,
               "ONNX int8 QDQ (onnxruntime quantizer)"),
    )
}


def split_names(values: str | Iterable[str] | None) -> list[str]:
    """The one list syntax of the CLI: a repeatable option whose values may be comma lists.

    ``["fp32,int8", "onnx"]`` and ``"fp32, int8,onnx"`` both give ``["fp32", "int8", "onnx"]``
    (blanks dropped, duplicates kept once, first-given order), so ``--format a --format b``
    and ``--format a,b`` mean the same in every command.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    names = (part.strip() for value in values for part in value.split(","))
    return list(dict.fromkeys(name for name in names if name))


def parse_targets(spec: str | Iterable[str], option: str = "--format") -> list[Target]:
    """'fp32,int8', ['fp32', 'int8'] or 'all' -> targets in table order; unknown names list the valid ones."""
    names = split_names(spec)
    if not names:
        raise ConfigError(f"{option}: no format given; choose from " + ", ".join(TARGETS) + " or all")
    if "all" in names:
        return list(TARGETS.values())
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ConfigError(f"{option}: unknown format {unknown[0]!r}; choose from {', '.join(TARGETS)} or all")
    return [t for name, t in TARGETS.items() if name in names]


def parse_one_name(values: str | Iterable[str] | None, option: str = "--format") -> str | None:
    """The same syntax where exactly one name is meaningful (predict runs one model): None when not given."""
    names = split_names(values)
    if len(names) > 1:
        raise ConfigError(f"{option}: give one artifact, got {', '.join(names)}; run the command once per artifact")
    return names[0] if names else None


def runtime_for_file(filename: str) -> Runtime:
    if filename.endswith(".tflite"):
        return Runtime.tflite
    if filename.endswith(".onnx"):
        return Runtime.onnx
    raise ConfigError(f"{filename}: unknown model type; expected a .tflite or .onnx file")
