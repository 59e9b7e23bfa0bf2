"""A headless matplotlib canvas shared by bench's plots and the quantization report.

matplotlib comes from the optional ``bench`` extra; callers check
``matplotlib_available()`` and skip the plot (with a note) without it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

from segedge.util.optional import installed


def matplotlib_available() -> bool:
    return installed("matplotlib")


@contextlib.contextmanager
def png_canvas(figsize: tuple[float, float], dpi: int) -> Iterator[tuple[Any, Any]]:
    """A headless (Agg) figure and axes, closed however the drawing ends."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=figsize, dpi=dpi)
    try:
        yield figure, axes
    finally:
        plt.close(figure)


def figure_png(figure: Any) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
