"""JSON bytes as Go's encoding/json writes them (the backend and Argo are Go programs)."""

from __future__ import annotations

import json
from typing import Any


def _go_value(obj: Any) -> Any:
    """Go's encoding/json prints a float64 that is a whole number without ".0"."""
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 1e21:
        return int(obj)
    if isinstance(obj, dict):
        return {k: _go_value(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_go_value(v) for v in obj]
    return obj


_HTML = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def gojson(obj: Any, normalize: bool = True) -> str:
    """``json.Marshal`` as Go writes it: compact, map keys sorted, ``<>&`` escaped.

    `normalize=False` skips the float rewrite (for values already free of whole floats).
    """
    text = json.dumps(_go_value(obj) if normalize else obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _HTML:
        if char in text:
            text = text.replace(char, escaped)
    return text


def glen(obj: Any, normalize: bool = True) -> int:
    """Bytes of ``gojson(obj)`` (UTF-8). For a string: the quoted, escaped string."""
    return len(gojson(obj, normalize).encode("utf-8"))
