"""Headless matplotlib for the figures stages attach to their metadata and reports."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:
    """pyplot on the Agg backend: steps run in worker processes with no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes; the figure is closed so long runs do not accumulate them."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    pyplot().close(fig)
    return buffer.getvalue()
