"""Sparsity measures ρ (SAE-SPEC §2), per tensor and streamed over a whole model.

Both measures reduce a tensor to the same four moments (entries, zeros, L1, squared L2),
summed in float64 over chunks, so the global value over the concatenation of all prunable
tensors is computed exactly from per-tensor moments without holding more than one tensor.
Pass the task vector (``θ − θ0``) in delta space and the weights in weight space.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from saemerge.errors import unknown_name

# float64 scratch per chunk: 128 MiB at most, whatever the tensor size.
_CHUNK = 1 << 24


@dataclass
class Moments:
    """Sufficient statistics of a tensor for every measure."""

    n: int = 0
    zeros: int = 0
    l1: float = 0.0
    l2sq: float = 0.0

    def __iadd__(self, other: Moments) -> Moments:
        self.n += other.n
        self.zeros += other.zeros
        self.l1 += other.l1
        self.l2sq += other.l2sq
        return self


def moments(x: torch.Tensor) -> Moments:
    """Entries, zeros, ``‖x‖₁`` and ``‖x‖₂²`` of ``x``, accumulated in float64."""
    m = Moments()
    flat = x.detach().reshape(-1)
    for part in flat.split(_CHUNK):
        d = part.to(torch.float64)
        m.n += part.numel()
        m.zeros += int((part == 0).sum())
        m.l1 += float(d.abs().sum())
        m.l2sq += float((d * d).sum())
    return m


def zero_count_from(m: Moments) -> float:
    """``#(x == 0) / numel``; 0 for an empty tensor."""
    return m.zeros / m.n if m.n else 0.0


def hoyer_from(m: Moments) -> float:
    """Hoyer sparsity ``(√n − ‖x‖₁/‖x‖₂) / (√n − 1)`` from moments.

    Edge cases: 0 for an all-zero (or empty) tensor; 0 for a single entry, where the
    formula is 0/0 and a one-entry tensor carries no sparsity information; 0 for a flat
    tensor and 1 for exactly one non-zero entry. Clamped to [0, 1] against rounding.
    """
    if m.n <= 1 or m.l2sq == 0.0:
        return 0.0
    root_n = math.sqrt(m.n)
    value = (root_n - m.l1 / math.sqrt(m.l2sq)) / (root_n - 1.0)
    return min(1.0, max(0.0, value))


def zero_count(x: torch.Tensor) -> float:
    """Fraction of exactly-zero entries of ``x``."""
    return zero_count_from(moments(x))


def hoyer(x: torch.Tensor) -> float:
    """Hoyer sparsity of ``x`` (see :func:`hoyer_from` for edge cases)."""
    return hoyer_from(moments(x))


MEASURES: dict[str, Callable[[torch.Tensor], float]] = {"zero_count": zero_count, "hoyer": hoyer}
_FROM_MOMENTS: dict[str, Callable[[Moments], float]] = {"zero_count": zero_count_from, "hoyer": hoyer_from}


def get_measure(name: str) -> Callable[[torch.Tensor], float]:
    """The per-tensor measure called ``name``; SaeMergeError with close matches otherwise."""
    if name not in MEASURES:
        raise unknown_name("sparsity measure", name, MEASURES)
    return MEASURES[name]


class SparsityAccumulator:
    """Global ρ over the concatenation of tensors fed one at a time.

    >>> acc = SparsityAccumulator("zero_count")
    >>> acc.add(torch.tensor([0.0, 1.0]))  # the tensor's own rho
    0.5
    >>> _ = acc.add(torch.tensor([0.0, 0.0, 2.0]))
    >>> acc.value()
    0.6
    """

    def __init__(self, measure: str = "zero_count") -> None:
        get_measure(measure)
        self.measure = measure
        self.moments = Moments()
        self.tensors = 0

    def add(self, x: torch.Tensor) -> float:
        """Add one tensor; returns its own ρ (handy for local scoring)."""
        m = moments(x)
        self.moments += m
        self.tensors += 1
        return _FROM_MOMENTS[self.measure](m)

    def value(self) -> float:
        """ρ of the concatenation of every tensor added so far."""
        return _FROM_MOMENTS[self.measure](self.moments)
