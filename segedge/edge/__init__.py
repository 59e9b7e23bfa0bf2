"""On-device inference and benchmarking: LiteRT or onnxruntime, numpy and PIL. Never TensorFlow.

``from segedge.edge import load`` is the whole Python API::

    seg = load("bundle/model_int8.tflite")   # or the bundle folder
    mask = seg.predict("photo.jpg")           # HxW uint8 class ids, 255 = void

``predict`` takes a path, a PIL image or an HxWx3 uint8 RGB array; paths and
PIL images are read as ``segedge predict`` reads files (EXIF orientation
applied, alpha dropped).

``load`` and ``Segmenter`` are resolved on first use (PEP 562), so importing
``segedge.edge.camera`` or ``segedge.edge.sources`` does not pull in the predictor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segedge.edge.predictor import Segmenter, load

__all__ = ["Segmenter", "load"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from segedge.edge import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'segedge.edge' has no attribute {name!r}")
