"""Plots as report images, the same for the run report and a study's: PNG bytes, and ``data:`` URIs."""

from __future__ import annotations

import base64
import io
from typing import Any


def png_bytes(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (110 dpi, trimmed to its drawing)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, so a report shows it without the file beside it."""
    return "data:image/png;base64," + base64.b64encode(png).decode()
