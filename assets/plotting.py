"""Headless matplotlib for the figures stages attach to their metadata and reports."""

from __future__ import annotations

import base64
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


def png_markdown(png: bytes, alt: str) -> str:
    """The UI renders Markdown images; inline the PNG so it shows wherever the lake is."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
