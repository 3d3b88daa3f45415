"""Cyclic sparsity schedule with SGDR-style warm restarts (SAE-SPEC §5)."""

from __future__ import annotations

import math


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

    The arguments are typed and checked at the edge (:class:`saemerge.config.RunConfig`:
    ``steps, t0, t_mult >= 1``, ``0 <= s_min <= s_max < 1``).

    >>> [round(s, 4) for s in cyclic_schedule(steps=4, t0=2, t_mult=1)]
    [0.1, 0.35, 0.1, 0.35]
    """
    out: list[float] = []
    t_i, t_cur = t0, 0
    for _ in range(steps):
        rise = (1.0 - math.cos(math.pi * t_cur / t_i)) / 2.0
        out.append(s_max - (s_max - s_min) * rise if reverse else s_min + (s_max - s_min) * rise)
        t_cur += 1
        if t_cur == t_i:  # warm restart
            t_cur, t_i = 0, t_i * t_mult
    return out
