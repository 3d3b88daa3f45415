"""PSO-Merging baseline (SAE-SPEC §7): the per-tensor update and swarm bookkeeping.

A run: particles are checkpoints (base, experts, DARE-sparsified experts). Evaluate all,
:meth:`PsoSwarm.observe` each; then for ``step = 1..steps``: for every particle take
``r1, r2 = swarm.coefficients(particle, step)`` and stream :func:`pso_step` over its
tensors with its current position, velocity, personal best and the global best; evaluate
the new positions and observe them. The result is ``swarm.gbest``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch


def pso_step(
    x: torch.Tensor,
    v: torch.Tensor | None,
    pbest: torch.Tensor,
    gbest: torch.Tensor,
    r1: float,
    r2: float,
    w: float = 0.2,
    c1: float = 2.0,
    c2: float = 2.0,
    velocity_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One PSO update of one tensor.

    ``v' = w·v + c1·r1·(pbest − x) + c2·r2·(gbest − x)``, ``x' = x + v'``, in float32.

    Args:
        v: current velocity, or None for ``v0 = 0``.
        r1, r2: this particle's random scalars for this step (:meth:`PsoSwarm.coefficients`).
        velocity_dtype: dtype of the returned velocity; default ``x.dtype`` (pass
            ``torch.float32`` to keep velocities exact across steps).

    Returns:
        ``(x_new in x.dtype, v_new)``.
    """
    fx = x.to(torch.float32)
    vel = torch.zeros_like(fx) if v is None else w * v.to(device=x.device, dtype=torch.float32)
    vel = vel + (c1 * r1) * (pbest.to(device=x.device, dtype=torch.float32) - fx)
    vel = vel + (c2 * r2) * (gbest.to(device=x.device, dtype=torch.float32) - fx)
    return (fx + vel).to(x.dtype), vel.to(velocity_dtype or x.dtype)


def _unit_float(*parts: object) -> float:
    """A float in [0, 1) from sha256 of the parts (stable across processes and versions)."""
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


@dataclass(frozen=True)
class Best:
    """A best-so-far position: the checkpoint that holds it and its fitness."""

    checkpoint: str
    fitness: float


@dataclass
class PsoSwarm:
    """Personal and global bests of a swarm, plus its seeded random coefficients.

    Attributes:
        particles: particle names, in a fixed order (the order observations are applied).
        seed: run seed for ``r1, r2``.
        pbest: particle -> its best position so far.
        gbest: the best position over all particles so far.
    """

    particles: list[str]
    seed: int = 0
    pbest: dict[str, Best] = field(default_factory=dict)
    gbest: Best | None = None

    def coefficients(self, particle: str, step: int) -> tuple[float, float]:
        """``r1, r2 ~ U(0, 1)``: one pair per particle per step, from (seed, particle, step)."""
        return (_unit_float(self.seed, particle, step, "r1"), _unit_float(self.seed, particle, step, "r2"))

    def observe(self, particle: str, checkpoint: str, fitness: float) -> None:
        """Record an evaluated position; bests change only on strictly higher fitness."""
        if particle not in self.particles:
            raise KeyError(f"unknown particle {particle!r}")
        cur = self.pbest.get(particle)
        if cur is None or fitness > cur.fitness:
            self.pbest[particle] = Best(checkpoint, float(fitness))
        if self.gbest is None or fitness > self.gbest.fitness:
            self.gbest = Best(checkpoint, float(fitness))

    def observe_step(self, results: Mapping[str, tuple[str, float]]) -> None:
        """Observe ``particle -> (checkpoint, fitness)`` in particle order (order-independent)."""
        for p in self.particles:
            if p in results:
                self.observe(p, *results[p])

    def to_dict(self) -> dict:
        """JSON-able state, to carry the swarm between pipeline steps."""
        return {
            "particles": list(self.particles),
            "seed": self.seed,
            "pbest": {p: [b.checkpoint, b.fitness] for p, b in self.pbest.items()},
            "gbest": None if self.gbest is None else [self.gbest.checkpoint, self.gbest.fitness],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> PsoSwarm:
        """Inverse of :meth:`to_dict`."""
        g = d.get("gbest")
        return cls(
            particles=list(d["particles"]),
            seed=int(d.get("seed", 0)),
            pbest={p: Best(c, float(f)) for p, (c, f) in d.get("pbest", {}).items()},
            gbest=None if g is None else Best(g[0], float(g[1])),
        )


def initial_particles(base: str | None, experts: Sequence[str], dare_experts: Sequence[str]) -> list[str]:
    """Particle names in the fixed order base, experts, DARE experts (SAE-SPEC §7)."""
    return ([base] if base is not None else []) + list(experts) + list(dare_experts)
