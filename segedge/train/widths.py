"""Model sizes: the encoder (MobileNetV2, MobileNetV3 Small/Large), its width multiplier, and the decoder's widths.

No TensorFlow here, so ``TrainConfig`` checks a width before anything slow is
imported, and export reads a run's model description without Keras.

A deployer picks a model for a frame rate on a board; MobileNetV2's width
multiplier (Keras' ``alpha``) is the published knob for that, with ImageNet
no-top weights for 0.35, 0.5, 0.75 and 1.0. The decoder's widths scale with it
by default: at width 0.35 the 1.0 decoder (512/256/128/64 filters) would cost
more than the whole encoder, and the decoder is what dominated int8 latency at
224 px (docs/performance.md, "int8 at 224 px").

MobileNetV3 is offered because each adds a point to the latency-accuracy
frontier rather than replacing a V2 width. int8 at 224 px through segedge export,
2-core AMD EPYC, 2 threads (benchmarks/bench_frontier.py, 2026-12-08): V2 0.5
2.88 ms, V3 Small 5.51 ms, V2 1.0 7.24 ms, V3 Large 13.06 ms, at published ImageNet
top-1 65.4, 68.1, 71.8 and 75.6 % (TF-slim's MobileNetV2 table, Keras' MobileNetV3
table). V2 stays the default: V3 Small costs about twice V2 0.5's time for 2.7 points
of top-1, and only V3 Large goes past V2 1.0.
Keras ships its ImageNet no-top weights at widths 0.75 and 1.0 only.
"""

from __future__ import annotations

from typing import Any

from segedge.util.errors import ConfigError

DEFAULT_ENCODER = "mobilenet_v2"  # the seed's
# Each encoder's width multipliers: the ones keras.applications has ImageNet no-top weights for.
ENCODER_WIDTHS_OF: dict[str, tuple[float, ...]] = {
    "mobilenet_v2": (0.35, 0.5, 0.75, 1.0),
    "mobilenet_v3_small": (0.75, 1.0),
    "mobilenet_v3_large": (0.75, 1.0),
}
ENCODERS: tuple[str, ...] = tuple(ENCODER_WIDTHS_OF)
ENCODER_WIDTHS: tuple[float, ...] = ENCODER_WIDTHS_OF[DEFAULT_ENCODER]
DEFAULT_ENCODER_WIDTH = 1.0
# The decoder a width-1.0 encoder gets, as a share of the seed's: V3 Small's features are as narrow
# as V2 0.35's (its widest skip 288 channels against V2 1.0's 576), and the 1.0 decoder would cost
# more than the encoder; V3 Large's are as wide as V2 1.0's.
DECODER_SCALE_OF: dict[str, float] = {"mobilenet_v2": 1.0, "mobilenet_v3_small": 0.35, "mobilenet_v3_large": 1.0}
DECODER_FILTERS: tuple[int, ...] = (512, 256, 128, 64)  # the seed's decoder, at width 1.0
DIVISOR = 8  # channel counts in multiples of 8, as MobileNetV2 rounds its own (vector-friendly)


def make_divisible(value: float, divisor: int = DIVISOR) -> int:
    """``value`` rounded to a multiple of ``divisor``, never more than 10 % below it (MobileNetV2's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def check_encoder(value: Any) -> str:
    """One of ``ENCODERS``, or a ConfigError naming the choices."""
    if not isinstance(value, str) or value not in ENCODER_WIDTHS_OF:
        raise ConfigError(f"--encoder {value!r} is not one of {'|'.join(ENCODERS)}")
    return value


def check_encoder_width(value: Any, encoder: str = DEFAULT_ENCODER) -> float:
    """One of ``encoder``'s widths as a float, or a ConfigError naming the choices."""
    allowed = ENCODER_WIDTHS_OF[check_encoder(encoder)]
    try:
        if isinstance(value, bool):
            raise ValueError
        width = float(value)
    except (TypeError, ValueError):
        width = None
    if width is None or not any(abs(width - w) < 1e-9 for w in allowed):
        choices = "|".join(f"{w:g}" for w in allowed)
        raise ConfigError(f"--encoder-width {value!r} is not one of {choices} ({encoder}'s width multipliers "
                          "with ImageNet weights)")
    return next(w for w in allowed if abs(width - w) < 1e-9)


def scaled_decoder_widths(encoder_width: float, encoder: str = DEFAULT_ENCODER) -> tuple[int, ...]:
    """The seed's decoder widths times ``encoder_width`` and the encoder's share (V2 1.0: 512/256/128/64;
    V2 0.35 and V3 Small 1.0: 176/88/48/24)."""
    scale = encoder_width * DECODER_SCALE_OF[check_encoder(encoder)]
    return tuple(make_divisible(f * scale) for f in DECODER_FILTERS)


def parse_decoder_widths(value: Any) -> tuple[int, ...] | None:
    """``"256,128,64,32"`` or a list of 4 positive integers -> a tuple; None stays None (scaled)."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    try:
        if any(isinstance(p, (bool, float)) for p in parts):
            raise ValueError
        widths = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        widths = ()
    if len(widths) != len(DECODER_FILTERS) or min(widths) < 1:
        raise ConfigError(f"--decoder-widths {value!r}: give {len(DECODER_FILTERS)} positive filter counts, "
                          "deepest first (the default at width 1.0 is " + ",".join(map(str, DECODER_FILTERS)) + ")")
    return widths


def model_widths(encoder_width: Any, decoder_widths: Any,
                 encoder: str = DEFAULT_ENCODER) -> tuple[float, tuple[int, ...]]:
    """(encoder width, decoder widths) checked; decoder widths None -> scaled with the encoder's."""
    width = check_encoder_width(encoder_width, encoder)
    return width, parse_decoder_widths(decoder_widths) or scaled_decoder_widths(width, encoder)


def model_description(config: dict[str, Any]) -> dict[str, Any]:
    """What a run's config.json says about the model (a run from before these existed: MobileNetV2 1.0, seed decoder).

    Export records it in the manifest's ``source_model`` and in every artifact's metadata.
    """
    encoder = config.get("encoder", DEFAULT_ENCODER)
    width, decoder = model_widths(config.get("encoder_width", DEFAULT_ENCODER_WIDTH), config.get("decoder_widths"),
                                  encoder)
    return {"encoder": encoder, "encoder_width": width, "decoder_widths": list(decoder)}
