"""What ``segedge bench`` is asked to run, settled before any child process starts.

The options (thread counts, timing budget, gate bounds) are checked here, the
artifacts named with ``--format`` are matched against the bundle's manifest,
and the Keras model for the optional Keras row is found (or the reason it is
absent put in words), so that a mistake in what was asked fails in one line
before minutes of measuring, and ``run.py`` is left with the measuring itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segedge.bench.gate import GateBounds
from segedge.bench.machine import usable_cores
from segedge.bench.spawn import DEFAULT_CHILD_TIMEOUT
from segedge.contract.manifest import Manifest
from segedge.util import fileio
from segedge.util.errors import ConfigError, MissingExtraError, ModelError
from segedge.util.optional import installed


def default_threads() -> list[int]:
    """1 and every usable core: the two numbers a deployer needs."""
    return sorted({1, usable_cores()})


def parse_threads(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4] (deduplicated, in order); each at least 1."""
    values: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise ConfigError(f"--threads: {part!r} is not a positive whole number (e.g. --threads 1,2,4)")
        if int(part) not in values:
            values.append(int(part))
    if not values:
        raise ConfigError("--threads: give at least one thread count, e.g. --threads 1,2")
    return values


@dataclass
class BenchConfig:
    bundle: Path
    data: Path | None = None
    artifacts: list[str] | None = None  # None = every artifact in the manifest
    threads: list[int] = field(default_factory=default_threads)
    warmup: int = 10
    runs: int = 100
    e2e_images: int = 10
    limit: int | None = None  # at most this many --data val images
    keras: bool | None = None  # None = include the Keras row when TensorFlow and the model are there
    keras_model: Path | None = None
    bounds: GateBounds = field(default_factory=GateBounds)
    min_secs: float = 0.0  # per artifact and thread count: at least `runs` timed calls AND this long ...
    max_secs: float | None = None  # ... but stop here (TFLite benchmark_model's --min_secs / --max_secs)
    cooldown: float = 0.0  # seconds of idle between artifacts, so a hot Pi starts each one cooler
    child_timeout: float = DEFAULT_CHILD_TIMEOUT
    profile: bool = False  # per-op profile of each artifact, at its first thread count (--profile)

    def check(self) -> None:
        if self.runs < 1:
            raise ConfigError(f"--runs must be at least 1, got {self.runs}")
        if self.warmup < 0:
            raise ConfigError(f"--warmup cannot be negative, got {self.warmup}")
        if self.e2e_images < 0:
            raise ConfigError(f"--e2e-images cannot be negative, got {self.e2e_images}")
        for option, value in (("--min-secs", self.min_secs), ("--cooldown", self.cooldown)):
            if value < 0:
                raise ConfigError(f"{option} cannot be negative, got {value:g}")
        if self.max_secs is not None and self.max_secs <= 0:
            raise ConfigError(f"--max-secs must be positive, got {self.max_secs:g}")
        if self.max_secs is not None and self.max_secs < self.min_secs:
            raise ConfigError(f"--max-secs ({self.max_secs:g}) is below --min-secs ({self.min_secs:g}); "
                              "raise --max-secs or lower --min-secs")
        if self.child_timeout <= 0:
            raise ConfigError(f"--child-timeout must be positive, got {self.child_timeout:g}")
        if self.bounds.max_miou_drop < 0:
            raise ConfigError(f"--max-miou-drop cannot be negative, got {self.bounds.max_miou_drop}")

    def settings(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "data": str(self.data) if self.data else None,
                "artifacts": self.artifacts, "threads": self.threads, "warmup": self.warmup, "runs": self.runs,
                "e2e_images": self.e2e_images, "limit": self.limit, "keras": self.keras,
                "keras_model": str(self.keras_model) if self.keras_model else None,
                "min_secs": self.min_secs, "max_secs": self.max_secs, "cooldown_s": self.cooldown,
                "child_timeout_s": self.child_timeout, "profile": self.profile, "gate": self.bounds.to_dict()}


def select_artifacts(manifest: Manifest, wanted: list[str] | None) -> list[str]:
    if not manifest.artifacts:
        raise ModelError("the bundle's manifest lists no artifacts; re-export it")
    if not wanted:
        return list(manifest.artifacts)
    unknown = [name for name in wanted if name not in manifest.artifacts]
    if unknown:
        raise ConfigError(f"--format: {unknown[0]!r} is not in this bundle; it has "
                          + ", ".join(manifest.artifacts))
    return [name for name in manifest.artifacts if name in wanted]


def find_keras_model(manifest: Manifest, bundle: Path, explicit: Path | None) -> tuple[Path | None, str]:
    """The original model: ``--keras-model``, else the path export recorded; and why not, if none."""
    if explicit is not None:
        if not explicit.is_file():
            raise ModelError(f"--keras-model {explicit}: file not found")  # a missing model: 4, as everywhere
        return explicit, ""
    source = manifest.source_model or {}
    recorded = source.get("path") or source.get("file")
    if not isinstance(recorded, str) or not recorded:
        return None, "the manifest records no source model; pass --keras-model PATH"
    path = Path(recorded)
    candidates = [path] if path.is_absolute() else [
        *([Path(source["run"]) / path] if isinstance(source.get("run"), str) else []), bundle / path]
    for candidate in candidates:
        if candidate.is_file():
            expected = source.get("sha256")
            if expected and fileio.sha256_file(candidate) != expected:
                return None, f"{candidate} changed since export (sha256 differs); pass --keras-model to use it"
            return candidate, ""
    return None, f"{candidates[0]} (the manifest's source model) not found; pass --keras-model PATH"


def resolve_keras(config: BenchConfig, manifest: Manifest) -> tuple[Path | None, str]:
    """The Keras model to bench, or None and a note saying why the row is absent."""
    if config.keras is False:
        return None, "Keras row off (--no-keras)"
    if not installed("tensorflow"):
        if config.keras:
            raise MissingExtraError("tensorflow", "train")
        return None, "Keras row skipped: TensorFlow is not installed (the edge install)"
    path, why = find_keras_model(manifest, config.bundle, config.keras_model)
    if path is None and config.keras:
        raise ModelError(f"--keras: no Keras model to run: {why}")
    return path, (f"Keras row skipped: {why}" if path is None else "")
