"""The one step from "Keras model as trained" to "model the converters see".

Every converter (TFLite, tf2onnx) is fed the result of
``prepare_export_model`` so that graph-level decisions are made once:
a fixed batch of 1 (a dynamic batch makes each TRANSPOSE_CONV compute its
output shape at run time and fall out of XNNPACK, ~3x slower), and the exact
sub-pixel rewrite of the decoder's 3x3/stride-2 transposed convolutions
(``segedge.export.subpixel``; BatchNorm folded) for every target, TFLite int8
for its narrow layers only (``subpixel_max_filters`` has the figures and the
reasons). Verification still compares every artifact with the *original* Keras
model, so the rewrite is checked on each export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FIXED_BATCH = 1
INT8_TFLITE_MAX_FILTERS = 64


def subpixel_max_filters(target) -> int | None:
    """The widest Conv2DTranspose (in filters) the sub-pixel rewrite replaces for ``target``; None: all.

    Chosen per target from one interleaved run at 224 px (p50 ms, 1 / 2 threads; design.md):

    - TFLite fp32, fp16, dynamic: all (fp32 61.7 / 34.2 vs 181.3 / 90.9 with TRANSPOSE_CONV).
    - TFLite int8: only the high-resolution layers (<= 64 filters: the U-Net's last up-sampling
      block and the logits). In int8 the rewrite pays per output channel: four phase convolutions
      carry four sets of per-channel scales, zero points and biases, so rewriting all five grew
      the demo model's file from 0.2689x to 0.2711x fp32, past the 0.27x bound, while the two
      widest-resolution layers cost ~18 KB (0.2696x). That run: all 54.4 / 30.0, <= 64 filters
      63.3 / 33.1, original 72.4 / 33.1; a LiteRT-only interleaved run (20 rounds): all 54.3 / 29.2,
      <= 64 filters 58.4 / 31.7, original 64.7 / 34.2, fp32 sub-pixel 66.6 / 34.7.
    - onnxruntime int8: all. Un-rewritten, the quantizer leaves ConvTranspose float with its
      weights dequantized every run: 81.2 / 50.4 vs 48.4 / 37.7 rewritten.
    - onnxruntime fp32: all, although the original graph scales better with threads (72.5 / 39.1
      vs 68.7 / 52.7: MLAS' ConvTranspose is GEMM + col2im and threads well, the rewrite's
      DepthToSpace, a 6-D transpose in NCHW, does not). The int8 model is quantized from the
      fp32 ONNX, and the float fallback re-quantizes the bundle's fp32 ONNX with
      ``nodes_to_exclude`` naming the int8 model's nodes: both need one graph. Converting the
      sub-pixel graph again later (measured: in the fallback's process, even with tf2onnx's name
      counter restarted) does not reproduce tf2onnx's inserted-node names ("Conv__287" became
      "Conv__289"), so an int8-only graph could not be re-quantized by name.
    """
    from segedge.targets import Precision, Runtime

    if target.runtime is Runtime.tflite and target.precision is Precision.int8:
        return INT8_TFLITE_MAX_FILTERS
    return None


@dataclass
class ExportModel:
    """The graph handed to converters, plus what was done to get it (recorded in the manifest)."""

    model: Any  # keras.Model with a fixed-batch input
    batch: int
    height: int
    width: int
    channels: int
    input_name: str
    rewrites: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.height, self.width, self.channels)

    def details(self) -> dict[str, Any]:
        return {"fixed_batch": self.batch, "graph_rewrites": list(self.rewrites)}


def _clone_on_fixed_input(model, batch: int):
    """Functional models: a flat copy on a fixed-batch Input, weights copied (not shared)."""
    import keras

    source = model.inputs[0]
    fixed = keras.Input(batch_shape=(batch, *source.shape[1:]), dtype=source.dtype, name=_input_name(model))
    # A model loaded from .keras keeps its input structure as a one-element list; match it.
    structure = [fixed] if isinstance(model.input, (list, tuple)) else fixed
    clone = keras.models.clone_model(model, input_tensors=structure)
    clone.set_weights(model.get_weights())
    return clone


def _wrap_on_fixed_input(model, batch: int):
    """Any other model (subclassed, nested): call it once on a fixed-batch Input."""
    import keras

    source_shape = tuple(model.inputs[0].shape[1:])
    fixed = keras.Input(batch_shape=(batch, *source_shape), name=_input_name(model))
    return keras.Model(fixed, model(fixed, training=False), name=f"{model.name}_fixed")


def _input_name(model) -> str:
    name = getattr(model.inputs[0], "name", "") or "image"
    return name.split(":")[0]


def _subpixel(model, batch: int, max_filters: int | None):
    """The sub-pixel copy of ``model``, or None where the rewrite does not apply."""
    from segedge.export.subpixel import count_transposed_convs, rewrite_transposed_convs

    before = count_transposed_convs(model)
    if before == 0:
        return None, ""
    try:
        rewritten = rewrite_transposed_convs(model, batch_size=batch, max_filters=max_filters)
    except (TypeError, ValueError):
        return None, ""
    kept = count_transposed_convs(rewritten)
    if kept == before:
        return None, ""
    limit = "" if max_filters is None else f" (those with <= {max_filters} filters; {kept} kept)"
    return rewritten, (f"sub-pixel decoder: {before - kept} Conv2DTranspose -> phase convs + depth_to_space"
                       f"{limit}, BN folded")


def prepare_export_model(model, *, batch: int = FIXED_BATCH, subpixel: bool = True,
                         max_filters: int | None = None) -> ExportModel:
    """Keras model -> the fixed-batch inference graph every converter consumes.

    ``max_filters`` limits the sub-pixel rewrite to narrower transposed convolutions
    (``subpixel_max_filters``). The clone keeps weights, so the converted models compute
    what the source does (verification compares every artifact against the source).
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        from segedge.errors import ModelError

        raise ModelError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "segedge exports single-image, single-output segmentation models"
        )
    rewritten, note = _subpixel(model, batch, max_filters) if subpixel else (None, "")
    try:
        if rewritten is not None:
            fixed, rewrites = rewritten, [note]
        else:
            fixed = _clone_on_fixed_input(model, batch)
            rewrites = []
    except (TypeError, ValueError, AttributeError):
        fixed = _wrap_on_fixed_input(model, batch)
        rewrites = ["wrapped (model could not be cloned)"]
    _, height, width, channels = (int(v) for v in fixed.inputs[0].shape)
    return ExportModel(fixed, batch, height, width, channels, _input_name(fixed), rewrites)
