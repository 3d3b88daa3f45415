"""M2N2: competition, attraction and split-point SLERP crossover (SAE-SPEC §7, M2N2).

Model Merging of Natural Niches (Abrantes, Lange, Tang; GECCO 2025, arXiv 2508.16204). The
pure math, numbers and tensors in and out; the streaming driver is :mod:`saemerge.ops.m2n2`.

``S`` is a score matrix: one row per archive member, one column per example of the
generation's sample, ``S[i, j]`` = 1 when member i got example j right (0 otherwise).

* **Resource sharing** (competition): each example is a resource shared by the members that
  solve it, ``f_i = Σ_j S_ij / z_j`` with ``z_j = (Σ_k S_kj)^α`` (α = 1). An example no member
  solves has ``z_j = 0``; it contributes nothing, and its ``z_j`` is taken as 1 to avoid
  0/0 (as the authors' code does).
* **Attraction**: given parent A, ``g_B = Σ_j max(S_Bj − S_Aj, 0) / z_j``: B is attractive
  where it solves what A does not, weighted by how scarce the example is.
* **Mate selection**: A is drawn with probability ``f_A / Σ f``, then B with ``g_B / Σ g``.
* **Crossover** (as the authors' code, SAE-SPEC §7): ``t ~ U(0, 1)``; the parameters are
  flattened into one vector (tensors in natural name order, each row-major); SLERP's angle is
  taken once over that vector; a split point ``k`` is a random index into it (it may fall
  inside a tensor); entries before ``k`` get SLERP(A, B, t), the rest SLERP(B, A, t) =
  SLERP(A, B, 1 − t).
* **Replacement** (the authors' argmin over archive + child): the child replaces the member
  with the lowest resource-shared fitness (computed over the archive plus the child) unless
  the child itself is strictly the lowest; a tie with the weakest member lets the child in.

Where the paper's code leaves a case undefined (it would divide by zero), this module says
what happens: all fitness zero (no member solves any example) draws A uniformly; all
attraction zero (no member solves anything A misses) draws B by resource-shared fitness
among the others, uniformly when that is zero too. B ≠ A whenever the archive has two members.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from saemerge.errors import SaeMergeError

# SLERP falls back to linear interpolation when sin(Ω) is below this (colinear or opposite
# directions: the arc is undefined or numerically meaningless). The authors' code uses 1e-6 too.
SLERP_EPS = 1e-6


# ---------------------------------------------------------------------------- competition
def _matrix(scores) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise SaeMergeError(f"score matrix: expected members × examples, got shape {list(s.shape)}")
    if s.size and (not np.isfinite(s).all() or (s < 0).any()):
        raise SaeMergeError("score matrix: scores must be finite and non-negative")
    return s


def _shares(s: np.ndarray, alpha: float) -> np.ndarray:
    """``S_ij / z_j``: each member's share of each example's resource."""
    z = s.sum(axis=0)
    z = np.where(z > 0, z, 1.0) ** float(alpha)
    return s / z[None, :]


def shared_fitness(scores, alpha: float = 1.0) -> np.ndarray:
    """Resource-shared fitness ``f_i = Σ_j S_ij / (Σ_k S_kj)^α`` of every row of `scores`."""
    return _shares(_matrix(scores), alpha).sum(axis=1)


def attraction(scores, a: int, alpha: float = 1.0) -> np.ndarray:
    """Attraction of every member to parent `a`: ``g_B = Σ_j max(S_Bj − S_Aj, 0) / (Σ_k S_kj)^α``."""
    shares = _shares(_matrix(scores), alpha)
    return np.maximum(shares - shares[a][None, :], 0.0).sum(axis=1)


def proportional(weights, exclude: int | None = None) -> np.ndarray:
    """Probabilities proportional to `weights` (``exclude`` gets 0); uniform over the
    allowed entries when their weights are all zero. A single entry is always allowed."""
    w = np.asarray(weights, dtype=np.float64).copy()
    allowed = np.ones(len(w), dtype=bool)
    if exclude is not None and len(w) > 1:
        allowed[exclude] = False
    w[~allowed] = 0.0
    total = w.sum()
    if total > 0:
        return w / total
    return allowed / allowed.sum()


def parent_a_probabilities(scores, alpha: float = 1.0) -> np.ndarray:
    """P(A = i) ∝ f_i (uniform when every f_i is 0)."""
    return proportional(shared_fitness(scores, alpha))


def parent_b_probabilities(scores, a: int, alpha: float = 1.0) -> np.ndarray:
    """P(B = i | A = a) ∝ g_i; when every g_i is 0, ∝ f_i over the members other than A."""
    g = attraction(scores, a, alpha)
    g[a] = 0.0
    if g.sum() > 0:
        return proportional(g)
    return proportional(shared_fitness(scores, alpha), exclude=a)


@dataclass(frozen=True)
class Mating:
    """One child's draw: parents (row indices), their selection probabilities, t and the split."""

    a: int
    b: int
    p_a: float
    p_b: float
    t: float  # SLERP weight towards B before the split point
    split_u: float  # the split point as a fraction of the flattened vector: k = floor(u · n)


def draw_mating(scores, rng: np.random.Generator, alpha: float = 1.0) -> Mating:
    """Draw A by resource-shared fitness, B by attraction to A, then ``t`` and the split point.

    Four draws from `rng` in a fixed order (A, B, t, split), so a seeded generator replays.
    """
    pa = parent_a_probabilities(scores, alpha)
    a = int(rng.choice(len(pa), p=pa))
    pb = parent_b_probabilities(scores, a, alpha)
    b = int(rng.choice(len(pb), p=pb))
    t = float(rng.uniform())
    split_u = float(rng.uniform())
    return Mating(a, b, float(pa[a]), float(pb[b]), t, split_u)


@dataclass(frozen=True)
class Competition:
    """The outcome of one child's competition for the archive.

    Attributes:
        replaced: the row of the member the child replaces, or None (rejected).
        worst: the row with the lowest resource-shared fitness.
        fitness: resource-shared fitness of the archive rows, then the child (last), all
            computed over the archive plus the child.
    """

    replaced: int | None
    worst: int
    fitness: np.ndarray

    @property
    def child_fitness(self) -> float:
        return float(self.fitness[-1])

    @property
    def worst_fitness(self) -> float:
        return float(self.fitness[self.worst])


def compete(archive_scores, child_scores, alpha: float = 1.0) -> Competition:
    """Does the child beat the archive's weakest member? (the M2N2 replacement rule)

    Resource-shared fitness is computed over the archive and the child together (the child
    takes its share of every example it solves). The weakest member is the lowest fitness,
    the first row on ties (callers order rows by id). As in the authors' code (argmin over
    the archive and the child, the child last), the child is rejected only when its fitness
    is strictly below the weakest member's; a tie lets it in.
    """
    s = _matrix(archive_scores)
    child = np.asarray(child_scores, dtype=np.float64).reshape(1, -1)
    if not len(s):
        raise SaeMergeError("compete: the archive is empty")
    if child.shape[1] != s.shape[1]:
        raise SaeMergeError(f"compete: the child has {child.shape[1]} scores, the archive {s.shape[1]} examples")
    f = shared_fitness(np.vstack([s, child]), alpha)
    worst = int(np.argmin(f[:-1]))  # argmin returns the first of equal minima
    return Competition(worst if f[-1] >= f[worst] else None, worst, f)


# ------------------------------------------------------------------------------ crossover
def tensor_order(names: Sequence[str]) -> list[str]:
    """The order in which tensors are laid end to end in the flattened parameter vector.

    Natural order: numbers inside names compare as numbers, so transformer blocks come in
    depth order (``layers.2`` before ``layers.10``, which a plain sort would swap) and the
    split point cuts the network at one depth.
    """

    def key(name: str):
        return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]

    return sorted(names, key=key)


def split_index(split_u: float, n: int) -> int:
    """The split point ``k = floor(u · n)`` in ``0 .. n−1`` (uniform over them for u ~ U(0, 1)):
    an index into the flattened parameter vector of `n` entries."""
    if n < 1:
        raise SaeMergeError("split point: the model has no parameters")
    return min(int(float(split_u) * n), n - 1)


def flat_offsets(names: Sequence[str], numels: Mapping[str, int]) -> dict[str, int]:
    """Where each tensor starts in the flattened parameter vector (tensors in :func:`tensor_order`)."""
    offsets, at = {}, 0
    for name in tensor_order(names):
        offsets[name] = at
        at += int(numels[name])
    return offsets


def split_combine(
    a: torch.Tensor,
    b: torch.Tensor,
    before: tuple[float, float],
    after: tuple[float, float],
    k: int,
) -> torch.Tensor:
    """``c·A + c'·B`` with the pair `before` on the first `k` flat entries, `after` on the rest.

    Elementwise, so a tensor cut into row blocks gives the same entries as the whole (pass each
    block the number of its own entries that lie before the split point).
    """
    n = a.numel()
    k = min(max(int(k), 0), n)
    if k >= n:
        return combine(a, b, *before)
    if k <= 0:
        return combine(a, b, *after)
    out = combine(a, b, *after).reshape(-1)
    out[:k] = combine(a.reshape(-1)[:k], b.reshape(-1)[:k], *before)
    return out.reshape(a.shape)


class SlerpStats:
    """The dot product and squared norms of two tensors, fed as consecutive row blocks.

    Each block's rows are summed in float64, one value per row, and the per-row values are
    added with :func:`math.fsum` (exactly rounded, independent of order): the totals, and so
    the SLERP coefficients, are the same whether a tensor comes whole or in row blocks.
    """

    def __init__(self) -> None:
        self._dot: list[float] = []
        self._aa: list[float] = []
        self._bb: list[float] = []

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        rows = a.shape[0] if a.dim() else 1
        x = a.detach().reshape(rows, -1).double()
        y = b.detach().reshape(rows, -1).double()
        self._dot += (x * y).sum(dim=1).tolist()
        self._aa += (x * x).sum(dim=1).tolist()
        self._bb += (y * y).sum(dim=1).tolist()

    def coefficients(self, t: float) -> tuple[float, float, bool]:
        """(c_A, c_B, spherical): the child is ``c_A·A + c_B·B``; see :func:`slerp_coefficients`."""
        return slerp_coefficients(
            math.fsum(self._dot), math.sqrt(math.fsum(self._aa)), math.sqrt(math.fsum(self._bb)), t
        )


def slerp_coefficients(dot: float, norm_a: float, norm_b: float, t: float) -> tuple[float, float, bool]:
    """SLERP weights of A and B for the angle between their flattened directions.

    ``Ω = arccos(A·B / (|A| |B|))``; ``c_A = sin((1−t)Ω) / sin Ω``, ``c_B = sin(tΩ) / sin Ω``,
    applied to the unnormalised tensors (as the authors' code and mergekit do).

    Edge cases fall back to linear interpolation ``(1 − t, t)``: a zero-norm tensor (no
    direction), and ``sin Ω < SLERP_EPS``: colinear tensors (where SLERP tends to linear
    anyway) and opposite ones (no unique arc).

    Returns:
        (c_A, c_B, whether the spherical formula was used).
    """
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise SaeMergeError(f"SLERP weight t {t}: must lie in [0, 1]")
    if norm_a == 0.0 or norm_b == 0.0:
        return 1.0 - t, t, False
    cos = min(1.0, max(-1.0, dot / (norm_a * norm_b)))
    omega = math.acos(cos)
    sin = math.sin(omega)
    if sin < SLERP_EPS:
        return 1.0 - t, t, False
    return math.sin((1.0 - t) * omega) / sin, math.sin(t * omega) / sin, True


def combine(a: torch.Tensor, b: torch.Tensor, c_a: float, c_b: float) -> torch.Tensor:
    """``c_A·A + c_B·B`` computed in (at least) float32, returned in A's dtype (elementwise: blockwise exact)."""
    dtype = torch.promote_types(a.dtype, torch.float32)
    return (a.to(dtype) * c_a + b.to(dtype) * c_b).to(a.dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """SLERP of two tensors of one shape over their flattened directions (see :func:`slerp_coefficients`)."""
    if a.shape != b.shape:
        raise SaeMergeError(f"SLERP: shapes differ ({list(a.shape)} vs {list(b.shape)})")
    stats = SlerpStats()
    stats.add(a, b)
    c_a, c_b, _ = stats.coefficients(t)
    return combine(a, b, c_a, c_b)


def crossover_coefficients(stats: SlerpStats, t: float) -> tuple[tuple[float, float], tuple[float, float], bool]:
    """(before, after, spherical): the (c_A, c_B) pairs of SLERP(A, B, t) and SLERP(B, A, t).

    One angle for the whole parameter vector; SLERP(B, A, t) = SLERP(A, B, 1 − t).
    """
    c_a, c_b, spherical = stats.coefficients(t)
    d_a, d_b, _ = stats.coefficients(1.0 - float(t))
    return (c_a, c_b), (d_a, d_b), spherical


def crossover(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], t: float, split: int
) -> dict[str, torch.Tensor]:
    """The M2N2 child of two state dicts, as the authors' code makes it.

    The parameters are flattened into one vector (tensors in :func:`tensor_order`, each
    row-major), SLERP's angle is taken over that whole vector, and the child is SLERP(A, B, t)
    on the entries before flat index `split` and SLERP(B, A, t) from it on (the split may fall
    inside a tensor). Whole tensors in memory; :mod:`saemerge.ops.m2n2` streams the same rule.
    """
    if set(a) != set(b):
        raise SaeMergeError("crossover: the parents have different tensor names")
    stats = SlerpStats()
    for name in tensor_order(list(a)):
        if a[name].shape != b[name].shape:
            raise SaeMergeError(f"crossover: {name} shapes differ ({list(a[name].shape)} vs {list(b[name].shape)})")
        stats.add(a[name], b[name])
    before, after, _ = crossover_coefficients(stats, t)
    offsets = flat_offsets(list(a), {n: a[n].numel() for n in a})
    return {name: split_combine(a[name], b[name], before, after, split - offsets[name]) for name in a}
