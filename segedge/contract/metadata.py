"""What an artifact says about itself: labels, palette, void, outputs, pre-processing.

Export embeds one JSON document in every artifact before hashing it. TFLite
files get an entry named ``segedge`` in the flatbuffer's ``Model.metadata``
list. LiteRT and TFLite ignore names they do not know. ONNX files get a
``metadata_props`` entry with the key ``segedge``. This way a bare
``model_int8.tflite`` can still be run with no manifest beside it, and a
manifest edited after export (two class names swapped) is caught against the
file it describes.

Writing (export) uses TensorFlow's own flatbuffer schema (the object API that
tflite-support's populator uses; tflite-support itself pins protobuf < 4) and
``onnx``. Reading (edge) needs neither. TFLite goes through ``flatbuffers``,
which ai-edge-litert depends on. ONNX goes through onnxruntime's
``custom_metadata_map``.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path
from typing import Any

from segedge.util.errors import ModelError

KEY = "segedge"
FORMAT = "segedge-artifact"
VERSION = 1
TFLITE_IDENTIFIER = b"TFL3"
CHECKED = ("classes", "palette", "void", "void_handling", "model_outputs", "preprocess", "postprocess")
"""The fields predict and bench compare with manifest.json (everything that changes what a mask means)."""
PREPROCESS_CHECKED = ("height", "width", "scaling", "resize", "layout", "input", "mean", "std")


def build(artifact: str, runtime: str, precision: str, *, classes: list[str], palette: list[list[int]], void: int,
          void_handling: str, model_outputs: int, preprocess: dict[str, Any], segedge_version: str,
          postprocess: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document embedded in one artifact (the manifest's fields that a device needs).

    ``model`` (encoder, encoder_width, decoder_widths) says which size a bare file is; it changes no mask's
    meaning, so it is not among the fields checked against the manifest.
    """
    extra = {"model": dict(model)} if model else {}
    return {**extra, "format": FORMAT, "version": VERSION, "segedge": segedge_version, "artifact": artifact,
            "runtime": runtime, "precision": precision, "classes": list(classes),
            "palette": [list(map(int, rgb)) for rgb in palette], "void": int(void), "void_handling": void_handling,
            "model_outputs": int(model_outputs), "preprocess": dict(preprocess),
            "postprocess": dict(postprocess or {"upsample": "mask"})}


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def decode(raw: bytes | str, source: str) -> dict[str, Any]:
    """JSON -> dict, or ModelError naming the file (a damaged entry is an error, not 'no metadata')."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{source}: its embedded segedge metadata is not valid JSON ({exc}); re-export it") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelError(f"{source}: its embedded '{KEY}' metadata is not segedge's; re-export it")
    if document.get("version") != VERSION:
        raise ModelError(f"{source}: embedded segedge metadata version {document.get('version')!r} is not "
                         f"{VERSION}, the one this segedge reads; re-export it with this version")
    return document


# ------------------------------------------------------------------ writing (export: TensorFlow / onnx)


def embed_tflite(data: bytes, document: dict[str, Any]) -> bytes:
    """``data`` with a ``segedge`` metadata entry (an existing one is replaced), via TF's flatbuffer schema."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))
    model.buffers = list(model.buffers or [])
    entries = list(model.metadata or [])
    ours = [m for m in entries if (m.name or b"") in (KEY, KEY.encode())]
    buffer = schema.BufferT()
    buffer.data = list(encode(document))
    if ours:  # re-embedding (e.g. a re-quantized model): overwrite our own buffer, add nothing
        model.buffers[ours[0].buffer] = buffer
        model.metadata = [m for m in entries if m not in ours[1:]]
    else:
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = KEY
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*entries, entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def embed_onnx(data: bytes, document: dict[str, Any]) -> bytes:
    """``data`` with ``metadata_props['segedge']`` set (an existing entry, e.g. from the fp32 model, replaced)."""
    import onnx

    model = onnx.load_from_string(data)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    for key, value in [*kept, (KEY, encode(document).decode())]:
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString()


def embed(data: bytes, runtime: str, document: dict[str, Any]) -> bytes:
    return embed_tflite(data, document) if runtime == "tflite" else embed_onnx(data, document)


# ------------------------------------------------------------------ reading (edge: no TensorFlow)


def _tflite_entry(buf) -> bytes | None:
    """The ``segedge`` buffer of a TFLite flatbuffer, read with the ``flatbuffers`` runtime only.

    Model (schema.fbs) field 4 is ``buffers: [Buffer]``, field 6 ``metadata: [Metadata]``;
    Metadata is ``name: string`` (0), ``buffer: uint`` (1); Buffer is ``data: [ubyte]`` (0).
    """
    from flatbuffers import encode as fb_encode
    from flatbuffers import number_types, table

    def field(index: int) -> int:  # vtable slot of field ``index``
        return 4 + 2 * index

    root = table.Table(buf, fb_encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0))
    meta_at = root.Offset(field(6))
    if not meta_at:
        return None
    start, count = root.Vector(meta_at), root.VectorLen(meta_at)
    for i in range(count):
        entry = table.Table(buf, root.Indirect(start + 4 * i))
        name_at = entry.Offset(field(0))
        if not name_at or entry.String(name_at + entry.Pos) != KEY.encode():
            continue
        buffer_at = entry.Offset(field(1))
        index = entry.Get(number_types.Uint32Flags, buffer_at + entry.Pos) if buffer_at else 0
        buffers_at = root.Offset(field(4))
        if not buffers_at or index >= root.VectorLen(buffers_at):
            return None
        buffer = table.Table(buf, root.Indirect(root.Vector(buffers_at) + 4 * index))
        data_at = buffer.Offset(field(0))
        if not data_at:
            return None
        first, length = buffer.Vector(data_at), buffer.VectorLen(data_at)
        return bytes(buf[first : first + length])
    return None


def read_tflite(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The embedded document of a .tflite file, None when it has none (exported by an older segedge)."""
    path = Path(path)
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size < 8:
            return None
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if buf[4:8] != TFLITE_IDENTIFIER:
                return None
            try:
                raw = _tflite_entry(buf)
            except (IndexError, ValueError, TypeError, struct.error) as exc:  # offsets pointing outside the file
                raise ModelError(f"{path}: not a valid TFLite model (its flatbuffer is damaged: {exc}); "
                                 "re-export or re-copy it") from exc
    return None if raw is None else decode(raw, str(path))


def read_onnx_session(session: Any, source: str) -> dict[str, Any] | None:
    """The embedded document of an open onnxruntime session's model, None when it has none."""
    raw = session.get_modelmeta().custom_metadata_map.get(KEY)
    return None if raw is None else decode(raw, source)


def read_artifact(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The embedded document of a .tflite or .onnx file (ONNX: a session with no graph optimisation)."""
    path = Path(path)
    if path.suffix != ".onnx":
        return read_tflite(path)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own Fail/InvalidProtobuf types
        raise ModelError(f"{path}: not a valid ONNX model ({exc}); re-export or re-copy it") from exc
    return read_onnx_session(session, str(path))


# ------------------------------------------------------------------ checks (predict, bench)


def bare_manifest(path: Path, document: dict[str, Any], tensor_in: Any, tensor_out: Any) -> tuple[Any, str, Any]:
    """(Manifest, artifact name, entry) for an artifact run with no manifest.json: all from its metadata.

    ``tensor_in``/``tensor_out`` are the opened model's own ``TensorSpec``s. The sha256 is the
    file's own (there is no export record to compare it with).
    """
    from segedge.contract.manifest import ArtifactInfo, Manifest, TensorInfo
    from segedge.contract.preprocess import PreprocessSpec
    from segedge.util import fileio

    def tensor(spec: Any) -> TensorInfo:
        return TensorInfo(spec.name, spec.dtype, [int(v) for v in spec.shape], spec.scale, spec.zero_point)

    try:
        name = str(document["artifact"])
        info = ArtifactInfo(file=path.name, runtime=str(document["runtime"]), precision=str(document["precision"]),
                            sha256=fileio.sha256_file(path), bytes=path.stat().st_size, input=tensor(tensor_in),
                            output=tensor(tensor_out), converter="", details={"source": "embedded metadata"})
        manifest = Manifest(classes=[str(c) for c in document["classes"]],
                            palette=[[int(v) for v in rgb] for rgb in document["palette"]],
                            void=int(document["void"]), void_handling=str(document["void_handling"]),
                            model_outputs=int(document["model_outputs"]),
                            preprocess=PreprocessSpec.from_dict(document["preprocess"]),
                            postprocess=dict(document.get("postprocess") or {"upsample": "mask"}), source_model={},
                            calibration={}, reference={}, versions={"segedge": str(document.get("segedge", ""))},
                            created="", artifacts={name: info})
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: its embedded segedge metadata is incomplete ({exc}); re-export it") from exc
    return manifest, name, info


def _differences(embedded: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    found = []
    for key in CHECKED:
        mine, theirs = embedded.get(key), recorded.get(key)
        if key == "postprocess" and isinstance(mine, dict) and isinstance(theirs, dict):
            if mine.get("upsample", "mask") != theirs.get("upsample", "mask"):
                found.append(f"postprocess.upsample is {mine.get('upsample', 'mask')!r} in the file but "
                             f"{theirs.get('upsample', 'mask')!r} in the manifest")
            continue
        if key == "preprocess" and isinstance(mine, dict) and isinstance(theirs, dict):
            found += [f"preprocess.{k} is {mine.get(k)!r} in the file but {theirs.get(k)!r} in the manifest"
                      for k in PREPROCESS_CHECKED if mine.get(k) != theirs.get(k)]
            continue
        if mine == theirs:
            continue
        if key in ("classes", "palette") and isinstance(mine, list) and isinstance(theirs, list):
            where = [i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b]
            if len(mine) != len(theirs):
                found.append(f"{key}: {len(mine)} in the file, {len(theirs)} in the manifest")
            elif where:
                i = where[0]
                found.append(f"{key}[{i}] is {mine[i]!r} in the file but {theirs[i]!r} in the manifest")
            continue
        found.append(f"{key} is {mine!r} in the file but {theirs!r} in the manifest")
    return found


def check_manifest(path: str | os.PathLike[str], embedded: dict[str, Any] | None, manifest: Any) -> None:
    """Refuse a manifest that disagrees with the metadata export embedded in ``path`` (ModelError, exit 4).

    A file without metadata passes only under an older manifest (scaled input): every artifact of a
    pixel-input bundle was written with its metadata, so one without it was replaced after export
    (and whether it takes pixels or scaled values cannot be known).
    """
    if embedded is None:
        if getattr(manifest.preprocess, "pixels_in", False):
            raise ModelError(f"{path}: has no embedded segedge metadata, but every artifact of this bundle was "
                             "exported with it; the file was replaced after export; re-export the bundle")
        return
    recorded = manifest.to_dict()
    differences = _differences(embedded, recorded)
    if differences:
        more = f" (and {len(differences) - 1} more)" if len(differences) > 1 else ""
        raise ModelError(f"{path}: manifest.json does not match the metadata embedded in the model: "
                         f"{differences[0]}{more}; the manifest was edited or belongs to another export; re-export")
