"""SAE pair merge (SAE-SPEC §3): sparsity-aware mixing ratio and the per-tensor merge.

The streaming driver (:mod:`saemerge.ops.sae`) calls, per tensor, :func:`omega` for each
parent's sparsity bonus, :func:`sae_lambda` for the mixing ratio and :func:`sae_merge_tensor`
for the child; pruning the parents and the child is :mod:`saemerge.core.prune`'s.
"""

from __future__ import annotations

import torch

from saemerge.errors import SaeMergeError, unknown_name

ATTRACTIONS = ("linear", "fill")


def omega(beta: float, rho: float) -> float:
    """Sparsity bonus of a parent for one tensor: ``ω = β · ρ``."""
    return beta * rho


def sae_lambda(s_a: float, s_b: float, omega_a: float, omega_b: float) -> float:
    """Mixing ratio ``λ = (s_A + ω_A) / ((s_A + ω_A) + (s_B + ω_B))``; 0.5 if the denominator is 0.

    ``λ`` is A's share: the child is ``λ·A + (1−λ)·B``.
    """
    num = s_a + omega_a
    den = num + s_b + omega_b
    if den == 0:
        return 0.5
    return num / den


def sae_merge_tensor(
    a: torch.Tensor,
    b: torch.Tensor,
    lam: float,
    attraction: str = "linear",
    base: torch.Tensor | None = None,
    *,
    name: str = "tensor",
) -> torch.Tensor:
    """Merge one tensor of two parents: ``λ·A + (1−λ)·B``.

    Args:
        a, b: the parents' tensors (same shape).
        lam: A's share, in [0, 1].
        attraction: ``linear`` applies the formula everywhere; ``fill`` takes the other
            parent's value unscaled where exactly one parent is zero.
        base: if given, work in delta space: "zero" means equal to the base, and the
            child is ``base + λ·(A−base) + (1−λ)·(B−base)``, so a position where both
            parents equal the base stays exactly the base (the child keeps their sparsity).
            Without a base, "zero" means the weight is 0.
        name: tensor name for error messages.

    Returns:
        The child tensor, computed in float32 and returned in ``a.dtype``.
    """
    if attraction not in ATTRACTIONS:
        raise unknown_name("attraction", attraction, ATTRACTIONS)
    if a.shape != b.shape or (base is not None and base.shape != a.shape):
        shapes = [tuple(a.shape), tuple(b.shape)] + ([tuple(base.shape)] if base is not None else [])
        raise SaeMergeError(f"{name}: parents have different shapes {shapes}")
    fa = a.to(torch.float32)
    fb = b.to(device=a.device, dtype=torch.float32)
    if base is None:
        out = lam * fa + (1.0 - lam) * fb
        za, zb = fa == 0, fb == 0
    else:
        f0 = base.to(device=a.device, dtype=torch.float32)
        da, db = fa - f0, fb - f0
        out = f0 + (lam * da + (1.0 - lam) * db)
        za, zb = da == 0, db == 0
    if attraction == "fill":
        # Exactly one parent pruned here: the other one's value, unscaled.
        out = torch.where(za & ~zb, fb, torch.where(zb & ~za, fa, out))
    return out.to(a.dtype)
