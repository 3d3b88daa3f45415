"""Sizes written as text, and back: ``parse_size("2Mi")`` is 2097152, ``human(1536)`` is "1.5 KiB".

One parser for every size the user types: ``--max-shard-size``, ``--block-size``, ``saemerge cache
prune --max-size`` and the ``SAEMERGE_S3_*`` transfer settings. Pure: no I/O, so
:mod:`saemerge.core` may use it.

Spellings (case and spaces ignored): a plain number (``"512"``, ``"1.5"``, ``"1e6"``), or a
number with a unit. A letter alone or with ``i`` is binary (``K`` = ``Ki`` = ``KiB`` = 1024); a
letter with ``B`` is decimal, as transformers' ``max_shard_size`` (``KB`` = 1000). ``B`` alone
is bytes. Units go up to ``T``.
"""

from __future__ import annotations

import math
import re

from saemerge.errors import SaeMergeError

_BINARY = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DECIMAL = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_SIZE = re.compile(r"(?P<number>(?:\d+\.?\d*|\.\d+)(?:E[+-]?\d+)?)(?P<unit>[KMGT]I?B?|B)?")
EXAMPLES = "examples: 0, 500M, 10G, 2.5GB"


def _multiplier(unit: str) -> int:
    if unit in ("", "B"):
        return 1
    if unit.endswith("B") and "I" not in unit:
        return _DECIMAL[unit[0]]
    return _BINARY[unit[0]]


def parse_size(text: str | int, *, what: str = "size", minimum: int = 0) -> int:
    """Bytes (or a count) from ``"2Mi"``, ``"512K"``, ``"1.5G"``, ``"100MB"``, ``"0"`` or an int.

    A fractional result is rounded down (``"1.5"`` is 1).

    Args:
        what: names the input in the error (a flag such as ``--max-size``, an environment
            variable).
        minimum: the smallest value accepted.

    Raises:
        SaeMergeError: one line naming ``what`` and the text, for anything else (negative
            numbers, unknown units, inf, nan) or a value below ``minimum``.
    """
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise SaeMergeError(f"{what} {text!r}: not a size ({EXAMPLES})")
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.fullmatch(text.upper().replace(" ", ""))
        if match is None:
            raise SaeMergeError(f"{what} {text!r}: not a size ({EXAMPLES})")
        number, mult = match["number"], _multiplier(match["unit"] or "")
        if number.isdigit():  # exact, however large
            value = int(number) * mult
        else:
            scaled = float(number) * mult
            if not math.isfinite(scaled):
                raise SaeMergeError(f"{what} {text!r}: not a size ({EXAMPLES})")
            value = int(scaled)
    if value < minimum:
        raise SaeMergeError(f"{what} {text!r}: must be at least {minimum}")
    return value


def human(n: int) -> str:
    """``1536`` as ``"1.5 KiB"`` (binary units, one decimal; below 1 KiB as bytes)."""
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
