"""Performance and fitness (SAE-SPEC §4)."""

from __future__ import annotations

from collections.abc import Mapping

from saemerge.errors import SaeMergeError


def macro_average(per_task: Mapping[str, float]) -> float:
    """Mean of per-task scores: each task weighs the same, whatever its size.

    Raises:
        SaeMergeError: no tasks.
    """
    if not per_task:
        raise SaeMergeError("no task scores to average (empty optimisation set?)")
    return sum(float(v) for v in per_task.values()) / len(per_task)


def fitness(score: float, rho: float, gamma: float = 0.05) -> float:
    """``F = s + γ·ρ``: sparser models win ties and near-ties."""
    return float(score) + float(gamma) * float(rho)
