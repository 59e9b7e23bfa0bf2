"""The one step from "Keras model as trained" to "model the converters see".

Every converter (TFLite, tf2onnx) is fed the result of
``prepare_export_model`` so that graph-level decisions are made once:
a fixed batch of 1 (a dynamic batch makes each TRANSPOSE_CONV compute its
output shape at run time and fall out of XNNPACK, ~3x slower), and the exact
sub-pixel rewrite of the decoder's 3x3/stride-2 transposed convolutions
(``segedge.export.subpixel``; BatchNorm folded) for every target, in the form
measured fastest for its runtime (``rewrite_plan`` has the figures and the reasons).
Verification still compares every artifact with the *original* Keras model, so the
rewrite is checked on each export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segedge.contract.preprocess import PreprocessSpec

FIXED_BATCH = 1
ONNX_CHANNEL_MULTIPLE = 4


@dataclass(frozen=True)
class RewritePlan:
    """How the decoder's transposed convolutions are rewritten for one target (see ``rewrite_plan``)."""

    variant: str = "phases"          # segedge.export.subpixel.VARIANTS
    max_filters: int | None = None   # rewrite only Conv2DTranspose layers this narrow; None: all
    channel_multiple: int | None = None  # pad rewritten convs' output channels to a multiple of this

    @property
    def tag(self) -> str:
        pad = f"-c{self.channel_multiple}" if self.channel_multiple else ""
        return f"{self.variant}-{'all' if self.max_filters is None else self.max_filters}{pad}"


def rewrite_plan(target) -> RewritePlan:
    """The sub-pixel rewrite each target converts, chosen by measurement.

    Figures: one interleaved ``benchmarks/bench_runtimes.py`` run, 224 px, batch 1, p50 ms at
    1 / 2 threads (docs/performance.md, "Sub-pixel rewrite at 224 px").

    - TFLite fp32, fp16, dynamic: every transposed conv as four phase convs + DEPTH_TO_SPACE
      (fp32 57.0 / 35.6 vs 171.0 / 93.3 with TRANSPOSE_CONV). The interleave shuffle measured
      the same in LiteRT (56.5 / 35.3).
    - TFLite int8: every transposed conv too. On this AVX-512 VNNI CPU, 224 px, one
      thread, XNNPACK ran the three wide TRANSPOSE_CONVs (512/256/128 filters) in 54 % of the
      int8 model's time; as phase convolutions the model went from 10.8 to 6.8 ms (p50, one
      interleaved run, int8 logits in both). In int8 the rewrite pays per output channel: four
      phase convolutions carry four sets of per-channel scales, zero points and biases (~28
      bytes per channel), so the file is 0.2728x fp32 instead of 0.2697x (+82 KB; the first
      export's size bound was 0.27x, the test's is now 0.275x). The earlier AVX2 machine measured all five
      50.5 / 30.2 ms against 52.9 / 32.0 for the two narrow layers only.
    - onnxruntime fp32 and int8: every transposed conv as phase convs shuffled by NHWC
      concatenation + reshape ("interleave"). onnxruntime's DepthToSpace is a 6-D transpose in
      NCHW that got slower with a second thread (5.8 -> 10.3 ms for the five); with the
      interleave its layout optimiser removes every Transpose. fp32 59.6 / 35.2 (DepthToSpace
      62.6 / 50.2, original graph 60.4 / 40.3); int8 31.0 / 23.1 (DepthToSpace 37.3 / 36.6;
      un-rewritten, the quantizer leaves ConvTranspose float: 66.6 / 50.1). Both ONNX artifacts
      must be one graph: int8 is quantized from the fp32 ONNX, and the float fallback
      re-quantizes it with ``nodes_to_exclude`` naming the int8 model's nodes (a second
      conversion of a graph, in another process, did not reproduce tf2onnx's node names:
      "Conv__287" became "Conv__289").
    - onnxruntime, the logits layer (224 px, AVX-512 VNNI): its phase convolutions get
      output channels padded to a multiple of 4 (21 -> 24 zero filters, one Slice after the
      shuffle). onnxruntime's int8 convolution took 0.93 ms for a 2x2 conv with 21 outputs at
      112x112x160 and 0.55 with 20 or 24 (0.79 with 40, 1.18 with 42); the four logits convs
      went from 2.39 to 1.50 ms, the Slice costs 0.15. The fp32 ONNX is the same graph and
      measured the same (25.4 vs 25.3 ms under the profiler). The int8 model's concatenations
      share one scale (``segedge.export.onnx_scales``), which is a quantization choice, not a
      graph change.
    """
    from segedge.contract.targets import Runtime

    if target.runtime is Runtime.onnx:
        return RewritePlan("interleave", channel_multiple=ONNX_CHANNEL_MULTIPLE)
    return RewritePlan()


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


def clone_on_fixed_input(model, batch: int = FIXED_BATCH):
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


_SHUFFLE_NOTES = {"phases": "depth_to_space", "interleave": "concatenate/reshape interleave",
                  "dense": "one 2x2 conv + depth_to_space", "transpose": "kept as transposed convs"}


def _subpixel(model, batch: int, plan: RewritePlan):
    """The sub-pixel copy of ``model``, or None where the rewrite does not apply."""
    from segedge.export.subpixel import KeepChannels, count_transposed_convs, rewrite_transposed_convs

    before = count_transposed_convs(model)
    if before == 0:
        return None, ""
    try:
        rewritten = rewrite_transposed_convs(model, batch_size=batch, variant=plan.variant,
                                             max_filters=plan.max_filters, channel_multiple=plan.channel_multiple)
    except (TypeError, ValueError):
        return None, ""
    kept = count_transposed_convs(rewritten)
    if kept == before:
        return None, ""
    limit = "" if plan.max_filters is None else f" (those with <= {plan.max_filters} filters; {kept} kept)"
    padded = [layer for layer in rewritten.layers if isinstance(layer, KeepChannels)]
    widths = ", ".join(f"{layer.name} {layer.count} -> {layer.input.shape[-1]}" for layer in padded)
    pad_note = f", output channels padded with zero filters to a multiple of {plan.channel_multiple} " \
               f"and sliced back ({widths})" if padded else ""
    return rewritten, (f"sub-pixel decoder: {before - kept} Conv2DTranspose -> phase convs + "
                       f"{_SHUFFLE_NOTES.get(plan.variant, plan.variant)}{limit}, BN folded{pad_note}")


def prepare_export_model(model, *, batch: int = FIXED_BATCH, plan: RewritePlan | None = None,
                         scaling: PreprocessSpec | None = None) -> ExportModel:
    """Keras model -> the fixed-batch inference graph every converter consumes.

    ``plan`` picks the sub-pixel variant and how narrow a transposed convolution must be to
    be rewritten (``rewrite_plan``; default: phases, all). ``scaling`` (the run's
    pre-processing) makes the graph take pixels 0..255 with that scaling inside
    (``segedge.export.pixels``; None keeps the trained, scaled input). The clone keeps weights, so the
    converted models compute what the source does (verification compares every artifact
    against the source).
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        from segedge.util.errors import ModelError

        raise ModelError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "segedge exports single-image, single-output segmentation models"
        )
    rewritten, note = _subpixel(model, batch, plan or RewritePlan())
    try:
        if rewritten is not None:
            fixed, rewrites = rewritten, [note]
        else:
            fixed = clone_on_fixed_input(model, batch)
            rewrites = []
    except (TypeError, ValueError, AttributeError):
        fixed = _wrap_on_fixed_input(model, batch)
        rewrites = ["wrapped (model could not be cloned)"]
    if scaling is not None:
        from segedge.export.pixels import pixel_input_model

        fixed, pixel_note = pixel_input_model(fixed, scaling.channel_scale, scaling.channel_offset)
        rewrites.append(pixel_note)
    _, height, width, channels = (int(v) for v in fixed.inputs[0].shape)
    return ExportModel(fixed, batch, height, width, channels, _input_name(fixed), rewrites)
