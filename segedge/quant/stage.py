"""The quant stage: the per-layer report and, when asked, the float fallback; returns data, prints nothing.

Shared by ``segedge quant-report`` and ``segedge export --debug-quant /
--int8-fallback``; both print the outcome with ``segedge.quant.show``, then
call ``QuantOutcome.raise_if_failed`` so a failed search exits 7 only after
its per-K table was printed and written.

Where the report may go is decided first (``report_files.report_target``: the one output rule), before
minutes of debugging. Scratch (SavedModels, debug models) lives in ``fileio.scratch_dir``: removed on
the way out, Ctrl-C and SIGTERM included, and by the next run if this one is killed outright.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from segedge.quant.context import TFLITE_INT8, load_context
from segedge.quant.fallback import FallbackResult, onnx_fallback, tflite_fallback
from segedge.quant.report import QuantReport, build_report, check_samples
from segedge.quant.report_files import report_target, write_report
from segedge.quant.search import check_bound, parse_k
from segedge.util import fileio
from segedge.util.errors import ModelError, ParityError


@dataclass
class QuantOptions:
    """What the user asked for (validated by ``check``)."""

    samples: int = 8
    onnx: bool = True
    k: str | int | None = None          # None: report only; "auto" or a count: the float fallback
    max_miou_drop: float = 1.0
    allow_large: bool = False

    def check(self) -> QuantOptions:
        """ConfigError on a bad value, before anything slow runs."""
        check_samples(self.samples)
        check_bound(self.max_miou_drop)
        if self.k is not None:
            self.k = parse_k(self.k)
        return self


@dataclass
class QuantOutcome:
    report: QuantReport
    out: Path
    written: dict[str, Path]
    fallbacks: list[FallbackResult] = field(default_factory=list)
    error: str | None = None   # the apply step's refusal (the bundle was restored)

    @property
    def failed(self) -> bool:
        return self.error is not None or any(r.failed for r in self.fallbacks)

    def raise_if_failed(self) -> None:
        """ParityError (exit 7) naming every artifact whose fallback failed; the bundle is unchanged then."""
        if not self.failed:
            return
        reasons = [f"{r.artifact}: {r.refused}" for r in self.fallbacks if r.failed]
        if self.error:
            reasons.append(self.error)
        raise ParityError("; ".join(reasons) + " (bundle left unchanged; the per-K table is in "
                          f"{self.out / 'quant_report.md'})")


def quant_stage(run_dir: str | os.PathLike[str], bundle_dir: str | os.PathLike[str], options: QuantOptions, *,
                out: str | os.PathLike[str] | None = None,
                data_root: str | os.PathLike[str] | None = None, overwrite: bool = False) -> QuantOutcome:
    """Report, then (with ``options.k``) search every int8 artifact the report covers and apply all or none.

    The bundle changes only when every search succeeded and every picked model
    re-measured within the bound as written; otherwise its files stay byte-identical. ``out`` (default:
    the bundle) is claimed before anything slow; ``overwrite`` lets a quant report an earlier
    quant-report wrote there be replaced.
    """
    from segedge.quant.apply import apply_results

    options.check()
    claimed = report_target(out, bundle_dir, overwrite)  # refuse a folder of user files before minutes of work
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ctx = load_context(run_dir, bundle_dir, data_root)
    if options.k is not None and TFLITE_INT8 not in ctx.manifest.artifacts:
        raise ModelError(f"{ctx.bundle}: has no int8 TFLite artifact to fall back from; export with --format int8")
    target = Path(out) if out is not None else ctx.bundle
    fallbacks: list[FallbackResult] = []
    error = None
    with fileio.scratch_dir() as scratch:
        report, debug = build_report(ctx, scratch, options.samples, options.onnx)
        if options.k is not None:
            fallbacks.append(tflite_fallback(ctx, report, debug.debugger, scratch, options.k,
                                             options.max_miou_drop, options.allow_large))
            if report.onnx is not None:
                fallbacks.append(onnx_fallback(ctx, report, scratch, options.k, options.max_miou_drop,
                                               options.allow_large))
            else:
                report.notes.append("the float fallback covered the TFLite int8 model only (no ONNX table: the "
                                    "bundle needs onnx and onnx-int8, and --onnx)")
            if not any(r.failed for r in fallbacks):
                try:
                    apply_results(ctx, fallbacks)
                except ParityError as exc:
                    error = exc.message
    written = write_report(report, target, [r.to_dict() for r in fallbacks], target=claimed)
    return QuantOutcome(report, target, written, fallbacks, error)
