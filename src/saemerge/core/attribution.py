"""Attribution of a model to the experts: how much of each expert's task vector a model carries.

Pure math, tensors in and numbers out; the streaming driver over checkpoints is
:mod:`saemerge.ops.attribution`. With ``τ_m = θ_m − θ_0`` (the model's task vector) and
``τ_i = θ_i − θ_0`` (the experts'), over the prunable tensors (SAE-SPEC §1):

* **Coefficients** ``c``: the least-squares fit ``τ_m ≈ Σ_i c_i τ_i``, from the k×k Gram
  system ``G c = b`` with ``G_ij = ⟨τ_i, τ_j⟩`` and ``b_i = ⟨τ_i, τ_m⟩`` (one pass over the
  tensors accumulates G, b and ``‖τ_m‖²``). A weight average of two experts is ``c = (½, ½)``,
  task arithmetic with α is ``(α, α)``, an expert itself is ``(1, 0)``. When G is singular
  (an expert with a zero task vector, or two colinear ones) the minimum-norm solution is taken.
* **Residual share** ``‖τ_m − Σ c_i τ_i‖ / ‖τ_m‖``: the part of the model's task vector no
  combination of the experts explains (0 for any linear merge; pruning and SLERP add some).
  None when ``τ_m = 0`` (the model is the base on every prunable tensor).
* **Top-10 % kept**, per expert: of the expert's largest ``ceil(0.1·n)`` entries of each tensor
  by ``|τ_i|`` (ties: lowest flat index, as pruning), the fraction where the model's task
  vector is non-zero, i.e. where the model did not fall back to the base (over all tensors:
  kept entries / top entries). A dense merge keeps 1.0; a pruned one shows what pruning cost
  each expert's most important entries.

Sums are accumulated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from saemerge.core.prune import top_k_mask
from saemerge.errors import SaeMergeError

TOP_FRACTION = 0.1


@dataclass(frozen=True)
class Attribution:
    """The attribution of one model (see the module doc)."""

    coefficients: list[float]
    residual_share: float | None
    top_kept: list[float]
    norm: float  # ‖τ_m‖
    expert_norms: list[float]  # ‖τ_i‖
    tensors: int  # how many tensors were compared

    def to_dict(self, names: Sequence[str] | None = None) -> dict:
        names = list(names) if names is not None else [f"expert{i}" for i in range(len(self.coefficients))]
        return {
            "coefficients": dict(zip(names, self.coefficients)),
            "residual_share": self.residual_share,
            "top_kept": dict(zip(names, self.top_kept)),
            "norm": self.norm,
            "expert_norms": dict(zip(names, self.expert_norms)),
            "tensors": self.tensors,
        }


def top_count(n: int, fraction: float = TOP_FRACTION) -> int:
    """How many entries of a tensor of `n` are its top `fraction`: ``ceil(fraction·n)``, at least 1."""
    return max(1, math.ceil(float(fraction) * n - 1e-9)) if n else 0


class AttributionAccumulator:
    """Feed one tensor's task vectors at a time (:meth:`add`), then read :meth:`result`."""

    def __init__(self, experts: int, top_fraction: float = TOP_FRACTION):
        if experts < 1:
            raise SaeMergeError("attribution: at least one expert is needed")
        if not 0.0 < top_fraction <= 1.0:
            raise SaeMergeError(f"attribution: top fraction {top_fraction} must lie in (0, 1]")
        self.k = int(experts)
        self.fraction = float(top_fraction)
        self.gram = np.zeros((self.k, self.k))
        self.b = np.zeros(self.k)
        self.mm = 0.0
        self.kept = np.zeros(self.k)
        self.top = np.zeros(self.k)
        self.tensors = 0

    def add(self, model: torch.Tensor, experts: Sequence[torch.Tensor], name: str = "tensor") -> None:
        """One tensor: the model's task vector and each expert's, all of one shape."""
        if len(experts) != self.k:
            raise SaeMergeError(f"attribution: {name}: {len(experts)} expert tensors, expected {self.k}")
        for e in experts:
            if e.shape != model.shape:
                raise SaeMergeError(
                    f"attribution: {name}: shapes differ (model {list(model.shape)}, expert {list(e.shape)})"
                )
        m = model.detach().reshape(-1).double()
        xs = [e.detach().reshape(-1).double() for e in experts]
        self.mm += float(torch.dot(m, m))
        nonzero = m != 0
        for i, x in enumerate(xs):
            self.b[i] += float(torch.dot(x, m))
            for j in range(i, self.k):
                g = float(torch.dot(x, xs[j]))
                self.gram[i, j] += g
                if j != i:
                    self.gram[j, i] += g
            count = top_count(x.numel(), self.fraction)
            mask = top_k_mask(x, count)
            self.kept[i] += int((mask & nonzero).sum())
            self.top[i] += count
        self.tensors += 1

    def result(self) -> Attribution:
        if not self.tensors:
            raise SaeMergeError("attribution: no tensors were compared (the model has no prunable tensors)")
        c, *_ = np.linalg.lstsq(self.gram, self.b, rcond=None)
        # ‖τ_m − Σ c_i τ_i‖² = ‖τ_m‖² − 2 cᵀb + cᵀGc (exact for any c; rounding can dip below 0)
        resid2 = max(0.0, self.mm - 2.0 * float(c @ self.b) + float(c @ self.gram @ c))
        share = math.sqrt(resid2 / self.mm) if self.mm > 0 else None
        return Attribution(
            coefficients=[float(v) for v in c],
            residual_share=share,
            top_kept=[float(k / t) if t else 0.0 for k, t in zip(self.kept, self.top)],
            norm=math.sqrt(self.mm),
            expert_norms=[math.sqrt(max(0.0, float(self.gram[i, i]))) for i in range(self.k)],
            tensors=self.tensors,
        )


def attribute(
    model: Mapping[str, torch.Tensor],
    base: Mapping[str, torch.Tensor],
    experts: Sequence[Mapping[str, torch.Tensor]],
    *,
    top_fraction: float = TOP_FRACTION,
) -> Attribution:
    """The attribution of `model` (state dict) to `experts`, all against `base`, over every tensor given.

    The caller chooses the tensors (the prunable ones, SAE-SPEC §1); names missing from an
    expert or the base are an error.
    """
    acc = AttributionAccumulator(len(experts), top_fraction)
    for name in sorted(model):
        if name not in base or any(name not in e for e in experts):
            raise SaeMergeError(f"attribution: {name} is missing from the base or an expert")
        b = base[name].double()
        for other in [model[name], *(e[name] for e in experts)]:
            if other.shape != b.shape:
                raise SaeMergeError(
                    f"attribution: {name}: shapes differ (base {list(b.shape)}, other {list(other.shape)})"
                )
        acc.add(model[name].double() - b, [e[name].double() - b for e in experts], name)
    return acc.result()
