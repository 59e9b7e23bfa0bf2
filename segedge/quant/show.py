"""Print a quant outcome for a person: the worst layers, and the per-K table of every fallback search.

Not a command: ``segedge quant-report`` and ``segedge export`` both call it,
so the table the docs promise looks the same from either, and it is
printed also when the search failed (before the command exits 7).
"""

from __future__ import annotations

from collections.abc import Callable

from segedge.quant.fallback import FallbackResult
from segedge.quant.report import QuantReport
from segedge.quant.report_files import REPORT_MD, noise_line, verdict
from segedge.quant.stage import QuantOutcome

Echo = Callable[[str], None]


def worst_lines(report: QuantReport, count: int = 5) -> list[str]:
    lines = [f"TFLite int8: {len(report.tflite)} quantized layers; worst {min(count, len(report.tflite))} "
             "by RMSE/scale:"]
    for row in report.tflite[:count]:
        corr = f"{row.correlation:.4f}" if row.correlation is not None else "-"
        lines.append(f"  {row.rmse_over_scale or 0:6.3f}  rmse {row.rmse:.4g}  corr {corr}  {row.op:<16} {row.name}")
    return lines


def fallback_table(result: FallbackResult) -> list[str]:
    data = result.to_dict()
    lines = [f"{result.artifact}: Keras mIoU {100 * result.keras_miou:.2f}; bound: drop <= "
             f"{result.max_miou_drop:g} points ({result.mode})", f"  {noise_line(data)}",
             "    K  float    mIoU    drop  +-noise   p50 ms   x fp32  meets"]
    for t in sorted(result.tried, key=lambda t: t.k):
        noise = f"{t.drop_noise:7.2f}" if t.drop_noise is not None else "      -"
        ratio = f"{t.size_ratio:6.2f}x" if t.size_ratio is not None else "      -"
        meets = ("yes, too large" if t.too_large else "yes") if t.meets else "no"
        p50 = f"{t.p50_ms:7.2f}" if t.p50_ms is not None else "      -"
        lines.append(f"  {t.k:>3d}  {len(t.float_layers):>5d}  {100 * t.miou:6.2f}  {t.drop:6.2f}  {noise}  "
                     f"{p50}  {ratio}  {meets}")
    lines.append(f"  {verdict(data)}")
    if result.replaced:
        lines.append(f"  manifest: {result.artifact} precision {'mixed' if result.float_layers else 'int8'}, "
                     f"{result.trial(result.applied_k).size_ratio:.2f}x fp32, io {result.io_dtype.get('input')}/"
                     f"{result.io_dtype.get('output')}; re-measured drop {result.verified['drop']:.2f}")
    return lines


def print_outcome(outcome: QuantOutcome, echo: Echo) -> None:
    """Every line a person needs, through ``echo`` (``typer.echo`` in the commands)."""
    if not outcome.fallbacks:
        for line in worst_lines(outcome.report):
            echo(line)
    for result in outcome.fallbacks:
        for line in fallback_table(result):
            echo(line)
    if outcome.error:
        echo(f"verification of the written model failed: {outcome.error}")
    echo(f"wrote {outcome.out / REPORT_MD} (+ .json{', .png' if 'png' in outcome.written else ''})")
