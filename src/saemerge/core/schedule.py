"""Cyclic sparsity schedule with SGDR-style warm restarts (SAE-SPEC §5)."""

from __future__ import annotations

import math

from saemerge.errors import SaeMergeError


def _check_int(flag: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if not (isinstance(value, float) and value.is_integer()):
            raise SaeMergeError(f"{flag} {value!r} is not a whole number")
    value = int(value)
    if value < 1:
        raise SaeMergeError(f"{flag} {value} must be at least 1")
    return value


def _check_fraction(flag: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SaeMergeError(f"{flag} {value!r} is not a number") from None
    if not (0.0 <= v < 1.0):
        raise SaeMergeError(f"{flag} {value!r} is outside [0, 1)")
    return v


def cyclic_schedule(
    steps: int = 12,
    s_min: float = 0.1,
    s_max: float = 0.6,
    t0: int = 3,
    t_mult: int = 2,
    reverse: bool = False,
) -> list[float]:
    """Sparsity for each generation ``t = 0 .. steps-1``.

    ``s(t) = s_min + (s_max − s_min) · (1 − cos(π · T_cur / T_i)) / 2`` where ``T_cur`` is
    the position inside the current cycle and ``T_i`` its length (``t0``, multiplied by
    ``t_mult`` at each restart; ``t_mult = 1`` keeps cycles the same length). With
    ``reverse`` each cycle runs from ``s_max`` down towards ``s_min`` instead.

    Raises:
        SaeMergeError: naming the flag (``--steps``, ``--s-min``, ``--s-max``, ``--t0``,
            ``--t-mult``) for a value out of range.

    >>> [round(s, 4) for s in cyclic_schedule(steps=4, t0=2, t_mult=1)]
    [0.1, 0.35, 0.1, 0.35]
    """
    steps = _check_int("--steps", steps)
    t0 = _check_int("--t0", t0)
    t_mult = _check_int("--t-mult", t_mult)
    s_min = _check_fraction("--s-min", s_min)
    s_max = _check_fraction("--s-max", s_max)
    if s_min > s_max:
        raise SaeMergeError(f"--s-min {s_min} is greater than --s-max {s_max}")

    out: list[float] = []
    t_i, t_cur = t0, 0
    for _ in range(steps):
        rise = (1.0 - math.cos(math.pi * t_cur / t_i)) / 2.0
        out.append(s_max - (s_max - s_min) * rise if reverse else s_min + (s_max - s_min) * rise)
        t_cur += 1
        if t_cur == t_i:  # warm restart
            t_cur, t_i = 0, t_i * t_mult
    return out
