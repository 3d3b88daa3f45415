"""PSO-Merging (SAE-SPEC §7): the particles, the per-tensor update, and the swarm's bests.

A run (``pipeline/pso_pipeline.py``): the particles are checkpoints, listed by
:func:`initial_particles` (the base, each expert, and DARE-sparsified copies of each expert,
each copy with its own :func:`dare_seed`). Step 0 scores the initial positions on its
optimisation set: every particle's personal best is its position, the global best the best of
them. Each step ``k = 1..steps`` moves every particle with :func:`pso_step`, tensor by tensor,
with ``r1, r2 = coefficients(seed, particle, k)``; then the new positions, the personal bests
and the global best are scored on step k's own sample and :func:`update_bests` compares them
there. The output is the last global best.

Everything here is pure: tensors and plain values in, tensors and values out. Only
:func:`pso_step` needs torch, and imports it: the rest is the swarm's bookkeeping, which runs
in light pipeline steps that never touch a tensor (importing torch costs them seconds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

BASE = "base"


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """One PSO update of one tensor (or of the same row block of each).

    ``v' = w·v + c1·r1·(pbest − x) + c2·r2·(gbest − x)``, ``x' = x + v'``, computed in float32.

    Args:
        v: the current velocity, or None for ``v0 = 0``.
        r1, r2: this particle's random scalars for this step (:func:`coefficients`).

    Returns:
        ``(x' in x.dtype, v' in float32)``: velocities stay float32 whatever the model dtype
        (SAE-SPEC §7), so a bf16 model does not round its momentum at every step.
    """
    import torch

    fx = x.to(torch.float32)
    vel = torch.zeros_like(fx) if v is None else w * v.to(device=x.device, dtype=torch.float32)
    vel = vel + (c1 * r1) * (pbest.to(device=x.device, dtype=torch.float32) - fx)
    vel = vel + (c2 * r2) * (gbest.to(device=x.device, dtype=torch.float32) - fx)
    return (fx + vel).to(x.dtype), vel


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()


def coefficients(seed: int, particle: str, step: int) -> tuple[float, float]:
    """``r1, r2 ~ U(0, 1)``: one pair per particle per step, from sha256 of (seed, particle, step).

    Stable across processes and versions (Python's ``hash`` is salted per process).
    """
    return tuple(
        int.from_bytes(_digest(int(seed), particle, int(step), r)[:8], "little") / 2.0**64 for r in ("r1", "r2")
    )  # type: ignore[return-value]


def dare_seed(seed: int, expert: str, copy: int) -> int:
    """The DARE seed of copy `copy` (1, 2, ...) of `expert`: distinct per run seed, expert and copy.

    Each tensor's drop mask is then drawn from ``tensor_generator(dare_seed, tensor name)``
    (:mod:`saemerge.core.baselines`), as the DARE baselines draw theirs. 52 bits: the seed
    travels between pipeline steps as a number, and kfp carries numbers as doubles.
    """
    return int.from_bytes(_digest("pso-dare", int(seed), expert, int(copy))[:8], "little") >> 12


@dataclass(frozen=True)
class ParticleSpec:
    """Where a particle starts: a checkpoint, DARE-sparsified when ``drop_p > 0``.

    Attributes:
        name: ``base``, ``expert:<name>`` or ``expert:<name>~dare<copy>``.
        source: the checkpoint's URI.
        drop_p: DARE drop rate in delta space (0: the checkpoint itself).
        seed: the DARE seed (:func:`dare_seed`; 0 without DARE).
    """

    name: str
    source: str
    drop_p: float = 0.0
    seed: int = 0


def initial_particles(
    base: str | None, experts: Sequence[tuple[str, str]], copies: int, drop_p: float, seed: int
) -> list[ParticleSpec]:
    """The swarm (SAE-SPEC §7): the base (when given), the experts, then each expert's DARE copies.

    Args:
        base: the base checkpoint's URI, or None when the base is not a particle.
        experts: ``(name, uri)`` of each expert, in the run's order.
        copies: DARE-sparsified particles per expert.
        drop_p: their drop rate.
        seed: the run seed (each copy's DARE seed comes from it, the expert and the copy).
    """
    specs = [ParticleSpec(BASE, base)] if base is not None else []
    specs += [ParticleSpec(f"expert:{name}", uri) for name, uri in experts]
    specs += [
        ParticleSpec(f"expert:{name}~dare{c}", uri, float(drop_p), dare_seed(seed, name, c))
        for name, uri in experts
        for c in range(1, copies + 1)
    ]
    return specs


@dataclass(frozen=True)
class Scored:
    """A model and its fitness on the current step's optimisation set."""

    model: str
    fitness: float


@dataclass(frozen=True)
class Bests:
    """The swarm's bests after a step.

    Attributes:
        pbest: particle -> its personal best.
        gbest: the global best.
        improved: particles whose personal best became their new position, in particle order.
    """

    pbest: dict[str, Scored]
    gbest: Scored
    improved: tuple[str, ...]


def update_bests(
    particles: Sequence[str],
    positions: Mapping[str, Scored],
    pbest: Mapping[str, Scored] | None = None,
    gbest: Scored | None = None,
) -> Bests:
    """Personal and global bests, every fitness taken on the same (the current step's) sample.

    Step 0 (``pbest`` None): each personal best is the particle's position and the global best
    the best of them (a tie goes to the first in particle order). Later steps: a particle's
    personal best becomes its new position only when the position's fitness is strictly
    higher; the global best then moves to the best personal best only when that is strictly
    higher than the incumbent's (re-scored) fitness. Ties keep the incumbent; among
    challengers the first in particle order wins.
    """
    missing = [p for p in particles if p not in positions or (pbest is not None and p not in pbest)]
    if missing:
        raise KeyError(f"particle {missing[0]!r} has no position or personal best this step")
    if pbest is None:
        new_pbest = {p: positions[p] for p in particles}
        improved = tuple(particles)
        best = None
    else:
        if gbest is None:
            raise ValueError("a global best is needed after step 0")
        new_pbest, moved = {}, []
        for p in particles:
            if positions[p].fitness > pbest[p].fitness:
                new_pbest[p] = positions[p]
                moved.append(p)
            else:
                new_pbest[p] = pbest[p]
        improved, best = tuple(moved), gbest
    for p in particles:
        if best is None or new_pbest[p].fitness > best.fitness:
            best = new_pbest[p]
    if best is None:
        raise ValueError("a swarm needs at least one particle")
    return Bests(new_pbest, best, improved)
