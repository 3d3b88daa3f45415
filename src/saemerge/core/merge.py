"""SAE pair merge (SAE-SPEC §3): sparsity-aware mixing ratio and the per-tensor merge.

The streaming driver calls, per tensor: :func:`tensor_rho` to pick the sparsity that
scores each parent (global or local scoring), :func:`sae_lambda` for the mixing ratio and
:func:`sae_merge_tensor` (or :func:`sae_offspring_tensor`, which also prunes the parents
and the child to the generation's sparsity).
"""

from __future__ import annotations

import torch

from saemerge.core.prune import prune_tensor
from saemerge.errors import SaeMergeError, unknown_name

ATTRACTIONS = ("linear", "fill")
SCORINGS = ("global", "local")


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


def tensor_rho(scoring: str, prunable: bool, rho_global: float, rho_tensor: float | None) -> float:
    """The sparsity that scores a parent for one tensor (SAE-SPEC §3 ``scoring``).

    ``global`` always uses the model's global ρ; ``local`` uses the tensor's own ρ^l for
    prunable tensors and the global ρ for the others (embeddings, norms, LM head).
    """
    if scoring == "global":
        return rho_global
    if scoring == "local":
        if not prunable:
            return rho_global
        if rho_tensor is None:
            raise ValueError("local scoring of a prunable tensor needs its per-tensor rho")
        return rho_tensor
    raise unknown_name("scoring", scoring, SCORINGS)


def tensor_lambda(
    s_a: float,
    s_b: float,
    rho_a: float,
    rho_b: float,
    beta: float = 1.0,
) -> float:
    """``sae_lambda`` with ``ω = β·ρ`` for both parents (ρ already chosen by :func:`tensor_rho`)."""
    return sae_lambda(s_a, s_b, omega(beta, rho_a), omega(beta, rho_b))


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


def sae_offspring_tensor(
    a: torch.Tensor,
    b: torch.Tensor,
    lam: float,
    sparsity: float,
    *,
    prunable: bool,
    attraction: str = "linear",
    base: torch.Tensor | None = None,
    name: str = "tensor",
) -> torch.Tensor:
    """Prune both parents to ``sparsity``, merge, and prune the child (per-tensor granularity).

    Non-prunable tensors are merged without pruning. Global granularity needs the
    model-wide cut instead (see :mod:`saemerge.core.prune`), so the driver composes
    :func:`~saemerge.core.prune.apply_mask` and :func:`sae_merge_tensor` itself.
    """
    if prunable:
        a = prune_tensor(a, sparsity, base, name=name)
        b = prune_tensor(b, sparsity, base, name=name)
    child = sae_merge_tensor(a, b, lam, attraction, base, name=name)
    if prunable:
        child = prune_tensor(child, sparsity, base, name=name)
    return child
