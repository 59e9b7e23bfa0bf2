"""``manifest.json``: the contract between export and the edge.

Export writes it; predict and bench read it (``json.loads``, never ``eval``)
and refuse a bundle whose schema they do not know or whose artifact bytes no
longer match the recorded sha256. numpy-free and TensorFlow-free.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segedge.contract.preprocess import PreprocessSpec
from segedge.util import fileio
from segedge.util.errors import ModelError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
REFERENCE_NAME = "reference.npz"


@dataclass
class TensorInfo:
    name: str
    dtype: str
    shape: list[int]
    scale: float | None = None
    zero_point: int | None = None


@dataclass
class ArtifactInfo:
    file: str
    runtime: str
    precision: str
    sha256: str
    bytes: int
    input: TensorInfo
    output: TensorInfo
    converter: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> ArtifactInfo:
        data = dict(data)
        data["input"] = TensorInfo(**data["input"])
        data["output"] = TensorInfo(**data["output"])
        return cls(**data)


@dataclass
class Manifest:
    classes: list[str]
    palette: list[list[int]]
    void: int
    void_handling: str
    model_outputs: int
    preprocess: PreprocessSpec
    source_model: dict[str, Any]
    calibration: dict[str, Any]
    reference: dict[str, Any]
    versions: dict[str, str]
    created: str
    artifacts: dict[str, ArtifactInfo] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    # How logits become a mask at the image's size ({"upsample": "logits"|"mask"}, segedge.contract.upsample);
    # a manifest written before this field existed was exported for nearest on the mask.
    postprocess: dict[str, Any] = field(default_factory=lambda: {"upsample": "mask"})

    @property
    def upsample(self) -> str:
        return str(self.postprocess.get("upsample", "mask"))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict, source: str = MANIFEST_NAME) -> Manifest:
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise ModelError(
                f"{source}: unknown manifest schema_version {version!r} (this segedge reads "
                f"{SCHEMA_VERSION}); re-export the bundle with this segedge version"
            )
        try:
            fields = dict(data)
            fields["preprocess"] = PreprocessSpec.from_dict(fields["preprocess"])
            fields["artifacts"] = {k: ArtifactInfo.from_dict(v) for k, v in fields.get("artifacts", {}).items()}
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: manifest is missing or has a malformed field ({exc})") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        fileio.write_json(path, self.to_dict())


def load_manifest(bundle: str | os.PathLike[str]) -> Manifest:
    """Read ``BUNDLE/manifest.json`` (or the manifest file itself) with clear errors."""
    path = Path(bundle)
    if path.is_dir():
        path = path / MANIFEST_NAME
    data = fileio.read_json_object(
        path, missing="manifest not found; export a bundle with 'segedge export RUN --out BUNDLE'",
        fix="re-export the bundle")
    return Manifest.from_dict(data, source=str(path))


def verify_artifact_file(path: Path, info: ArtifactInfo) -> None:
    """Refuse a file whose bytes differ from what export recorded (truncated or tampered)."""
    if not path.is_file():
        raise ModelError(f"{path}: artifact listed in the manifest is missing")
    digest = fileio.sha256_file(path)
    if digest != info.sha256:
        raise ModelError(
            f"{path}: sha256 {digest[:12]}... does not match the manifest's {info.sha256[:12]}...; "
            "the file was truncated or changed after export; re-export the bundle"
        )
