"""Baseline merge methods (SAE-SPEC §7), one tensor at a time.

Every function takes the same-named tensor of each checkpoint, computes in float32 and
returns the dtype of the first expert tensor. Methods with a base work on task vectors
``τ_i = θ_i − θ_0``. TIES and DARE apply to every tensor (embeddings included), as merging
tools conventionally do; only SAE's own pruning is limited to prunable tensors.

``MERGE_METHODS`` is the one table from method name to implementation and parameters;
:func:`get_method` looks a name up with close-match suggestions.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from saemerge.core.prune import block_index, top_k_mask
from saemerge.errors import SaeMergeError, unknown_name

__all__ = [
    "MERGE_METHODS",
    "MethodSpec",
    "get_method",
    "block_index",
    "dare",
    "dare_drop",
    "linear",
    "rankmean_block_delta",
    "rankmean_tensor",
    "rankmean_tensor_weights",
    "rankmean_weights",
    "task_arithmetic",
    "tensor_generator",
    "ties",
    "ties_combine",
]


def _check(tensors: Sequence[torch.Tensor], base: torch.Tensor | None, weights, name: str):
    if not tensors:
        raise SaeMergeError(f"{name}: no expert tensors to merge")
    shape = tensors[0].shape
    for t in list(tensors) + ([base] if base is not None else []):
        if t.shape != shape:
            raise SaeMergeError(f"{name}: shapes differ ({tuple(shape)} vs {tuple(t.shape)})")
    if weights is None:
        return [1.0] * len(tensors)
    if len(weights) != len(tensors):
        raise SaeMergeError(f"{name}: {len(weights)} weights for {len(tensors)} experts")
    return [float(w) for w in weights]


def _deltas(base: torch.Tensor, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    f0 = base.to(torch.float32)
    return [t.to(device=base.device, dtype=torch.float32) - f0 for t in tensors]


def linear(
    tensors: Sequence[torch.Tensor],
    weights: Sequence[float] | None = None,
    normalize: bool = True,
    *,
    name: str = "tensor",
) -> torch.Tensor:
    """Weighted average ``Σ w_i θ_i / Σ w_i`` (the weight-average baseline with equal weights).

    Like mergekit's ``linear``, weights are normalised to sum to 1 by default; with
    ``normalize=False`` the plain weighted sum ``Σ w_i θ_i`` is returned.
    """
    w = _check(tensors, None, weights, name)
    total = sum(w)
    if normalize:
        if total == 0:
            raise SaeMergeError(f"{name}: linear weights sum to 0, cannot normalise")
        w = [x / total for x in w]
    out = torch.zeros(tensors[0].shape, dtype=torch.float32, device=tensors[0].device)
    for wi, t in zip(w, tensors):
        out += wi * t.to(device=out.device, dtype=torch.float32)
    return out.to(tensors[0].dtype)


def task_arithmetic(
    base: torch.Tensor,
    tensors: Sequence[torch.Tensor],
    alpha: float = 1.0,
    weights: Sequence[float] | None = None,
    *,
    name: str = "tensor",
) -> torch.Tensor:
    """``θ_0 + α Σ w_i τ_i`` (weights default to 1, not normalised)."""
    w = _check(tensors, base, weights, name)
    acc = torch.zeros(base.shape, dtype=torch.float32, device=base.device)
    for wi, d in zip(w, _deltas(base, tensors)):
        acc += wi * d
    return (base.to(torch.float32) + alpha * acc).to(tensors[0].dtype)


def _density_keep(numel: int, density: float, name: str) -> int:
    """Entries TIES keeps of a task vector: ``max(1, int(density·n))``, mergekit's count.

    Users compare TIES merges with mergekit's, so the count is mergekit's (floor of the float
    product, at least one), not SAE's pruning count ``ceil((1−s)·n)`` (SAE-SPEC §1).
    """
    if not (0.0 < float(density) <= 1.0):
        raise SaeMergeError(f"{name}: density {density!r} is outside (0, 1]")
    return max(1, int(float(density) * numel))


def ties_combine(
    deltas: Sequence[torch.Tensor], weights: Sequence[float], density: float = 1.0, *, name: str = "tensor"
) -> torch.Tensor:
    """TIES on task vectors: trim, elect sign, disjoint mean. Returns the merged τ_m (float32).

    Trim keeps the top ``max(1, int(density·n))`` entries by magnitude of each task vector
    (mergekit's count; ties: lowest flat index); ``density = 1`` skips trimming. The elected sign is
    ``sign(Σ w_i τ̂_i)``, +1 where that sum is exactly 0 (as mergekit: ``sum >= 0`` elects +1, so of
    two entries that cancel the positive one survives); the disjoint mean averages, per position, the weighted entries whose
    sign agrees with it: ``Σ w_i τ̂_i [agree] / Σ w_i [agree]`` (0 where none agrees), as in
    mergekit with normalisation.
    """
    trimmed = []
    for d in deltas:
        k = _density_keep(d.numel(), density, name)
        trimmed.append(d if k >= d.numel() else d.masked_fill(~top_k_mask(d, k), 0.0))
    # In place where possible: this runs on every tensor of the model, embeddings included.
    total = torch.zeros_like(trimmed[0])
    for w, d in zip(weights, trimmed):
        total.add_(d, alpha=w)
    sign = total.ge_(0).mul_(2).sub_(1)  # +1 where the sum is >= 0, else -1; `total` is not needed any more
    num = torch.zeros_like(sign)
    den = torch.zeros_like(sign)
    for w, d in zip(weights, trimmed):
        agree = (d * sign) > 0  # same sign as the election, and non-zero
        num.addcmul_(agree, d, value=w)
        den.add_(agree, alpha=w)
    del sign
    return num.div_(den.masked_fill_(den == 0, 1.0))


def ties(
    base: torch.Tensor,
    tensors: Sequence[torch.Tensor],
    density: float = 0.2,
    alpha: float = 1.0,
    weights: Sequence[float] | None = None,
    *,
    name: str = "tensor",
) -> torch.Tensor:
    """TIES-merging: ``θ_0 + α · ties_combine(τ_1..τ_N)`` (see :func:`ties_combine`)."""
    w = _check(tensors, base, weights, name)
    merged = ties_combine(_deltas(base, tensors), w, density, name=name)
    return (base.to(torch.float32) + alpha * merged).to(tensors[0].dtype)


def tensor_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded from ``(seed, tensor name)`` with sha256 (stable across runs).

    Python's ``hash()`` is salted per process, so it would make DARE irreproducible.
    """
    digest = hashlib.sha256(f"{int(seed)}\x00{name}".encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def dare_drop(delta: torch.Tensor, drop_p: float, generator: torch.Generator) -> torch.Tensor:
    """Drop each entry with probability ``drop_p`` and rescale survivors by ``1/(1−p)``.

    The uniform draws come from ``generator`` on the CPU (then moved to the tensor's device),
    so the same generator state drops the same positions on CPU and CUDA.
    """
    p = float(drop_p)
    if not (0.0 <= p < 1.0):
        raise SaeMergeError(f"DARE drop probability {drop_p!r} is outside [0, 1)")
    u = torch.rand(tuple(delta.shape), generator=generator, dtype=torch.float32)
    keep = (u >= p).to(delta.device)
    return torch.where(keep, delta.to(torch.float32) / (1.0 - p), 0.0)


def dare(
    base: torch.Tensor,
    tensors: Sequence[torch.Tensor],
    drop_p: float,
    generator: torch.Generator,
    combine: str = "linear",
    alpha: float = 1.0,
    density: float = 1.0,
    weights: Sequence[float] | None = None,
    *,
    name: str = "tensor",
) -> torch.Tensor:
    """DARE: random drop + rescale of each task vector, then task arithmetic or TIES.

    Determinism: the caller passes ``tensor_generator(seed, tensor_name)``; the experts'
    drop masks are drawn from it in expert order, so a tensor's result depends only on
    (seed, name, inputs), not on the order tensors are visited or on the device.

    Args:
        drop_p: drop probability ``p`` in [0, 1).
        combine: ``linear`` (``θ_0 + α Σ w_i τ'_i``, i.e. dare_linear) or ``ties``
            (sign election + disjoint mean of the rescaled τ', i.e. dare_ties).
        density: extra TIES magnitude trim after the drop, ``ties`` only; the default 1.0
            means no trim (DARE's drop replaces TIES' trim, as in mergekit's dare_ties).
    """
    w = _check(tensors, base, weights, name)
    if combine not in ("linear", "ties"):
        raise unknown_name("DARE combine", combine, ("linear", "ties"))
    dropped = [dare_drop(d, drop_p, generator) for d in _deltas(base, tensors)]
    if combine == "linear":
        merged = torch.zeros_like(dropped[0])
        for wi, d in zip(w, dropped):
            merged += wi * d
    else:
        merged = ties_combine(dropped, w, density, name=name)
    return (base.to(torch.float32) + alpha * merged).to(tensors[0].dtype)


# ------------------------------------------------------------------------- RankMean


def rankmean_block_delta(base: torch.Tensor, tensor: torch.Tensor) -> float:
    """``Σ|τ|`` of one tensor (float64); sum it over a block's tensors to get ``d_k``."""
    return float((tensor.to(torch.float64) - base.to(device=tensor.device, dtype=torch.float64)).abs().sum())


def rankmean_weights(block_deltas: Mapping[int, Sequence[float]]) -> dict[int, list[float]]:
    """Per-block expert weights from per-block delta sizes.

    Args:
        block_deltas: block index ``k`` -> ``[d_k^1, ..., d_k^N]`` (``d = Σ|τ|`` over the
            block's tensors, one value per expert).

    Returns:
        block ``k`` -> ``[λ_k^1, ..., λ_k^N]`` with ``λ_k^e = r_k^e / Σ_j r_k^j``, where
        ``r_k^e`` is block k's rank within expert e's blocks, ascending (smallest delta 1,
        largest B). Equal deltas get consecutive ranks by block index (lower block, lower
        rank), so the result is deterministic.
    """
    if not block_deltas:
        return {}
    blocks = sorted(block_deltas)
    n = {len(block_deltas[k]) for k in blocks}
    if len(n) != 1:
        raise SaeMergeError(f"RankMean: blocks have different expert counts {sorted(n)}")
    n_experts = n.pop()
    ranks: dict[int, list[int]] = {k: [0] * n_experts for k in blocks}
    for e in range(n_experts):
        order = sorted(blocks, key=lambda k: (block_deltas[k][e], k))
        for r, k in enumerate(order, start=1):
            ranks[k][e] = r
    return {k: [r / sum(ranks[k]) for r in ranks[k]] for k in blocks}


def rankmean_tensor_weights(name: str, block_weights: Mapping[int, Sequence[float]], n_experts: int) -> list[float]:
    """Weights for one tensor: its block's, or equal weights for tensors outside blocks."""
    k = block_index(name)
    if k is None or k not in block_weights:
        return [1.0 / n_experts] * n_experts
    return list(block_weights[k])


def rankmean_tensor(
    base: torch.Tensor, tensors: Sequence[torch.Tensor], weights: Sequence[float], *, name: str = "tensor"
) -> torch.Tensor:
    """``θ_0 + Σ_e λ_e τ_e`` with the tensor's RankMean weights (they sum to 1)."""
    return task_arithmetic(base, tensors, 1.0, weights, name=name)


# ------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class MethodSpec:
    """A merge method: how to call it per tensor and which parameters it takes.

    Attributes:
        name: registry name.
        fn: per-tensor function, called as ``fn(base, tensors, **params)`` when
            ``needs_base`` else ``fn(tensors, **params)``; None for ``sae``, which is the
            evolutionary loop rather than one merge (see :mod:`saemerge.core.sae`).
        needs_base: whether the method works on task vectors of a base model.
        params: parameter name -> default (``weights`` None means equal weights).
        needs_generator: the caller passes ``generator=tensor_generator(seed, name)``.
        per_block_weights: the caller computes weights per tensor with RankMean
            (:func:`rankmean_weights` over a first pass, then :func:`rankmean_tensor_weights`).
        description: one line for ``--help`` and reports.
    """

    name: str
    fn: Callable[..., torch.Tensor] | None
    needs_base: bool
    params: Mapping[str, object] = field(default_factory=dict)
    needs_generator: bool = False
    per_block_weights: bool = False
    description: str = ""


MERGE_METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in [
        MethodSpec(
            "linear",
            linear,
            False,
            {"weights": None, "normalize": True},
            description="weighted average of the experts (weight average)",
        ),
        MethodSpec(
            "task_arithmetic",
            task_arithmetic,
            True,
            {"alpha": 1.0, "weights": None},
            description="base + alpha * sum of task vectors",
        ),
        MethodSpec(
            "ties",
            ties,
            True,
            {"density": 0.2, "alpha": 1.0, "weights": None},
            description="trim to density, elect sign, disjoint mean",
        ),
        MethodSpec(
            "dare_linear",
            functools.partial(dare, combine="linear"),
            True,
            {"drop_p": 0.8, "alpha": 1.0, "weights": None},
            needs_generator=True,
            description="random drop + rescale, then task arithmetic",
        ),
        MethodSpec(
            "dare_ties",
            functools.partial(dare, combine="ties"),
            True,
            {"drop_p": 0.8, "alpha": 1.0, "density": 1.0, "weights": None},
            needs_generator=True,
            description="random drop + rescale, then TIES sign election and disjoint mean",
        ),
        MethodSpec(
            "rankmean",
            rankmean_tensor,
            True,
            {"weights": None},
            per_block_weights=True,
            description="per-block weights from ranks of task-vector size",
        ),
        MethodSpec(
            "sae",
            None,
            True,
            {
                "beta": 1.0,
                "gamma": 0.05,
                "scoring": "global",
                "attraction": "linear",
                "space": "delta",
                "granularity": "tensor",
                "measure": "zero_count",
            },
            description="Sparsity-Aware Evolution (the evolutionary loop)",
        ),
    ]
}


def get_method(name: str) -> MethodSpec:
    """The merge method called ``name``; SaeMergeError with the closest names otherwise."""
    if name not in MERGE_METHODS:
        raise unknown_name("merge method", name, MERGE_METHODS)
    return MERGE_METHODS[name]
