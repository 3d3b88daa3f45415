"""Performance and fitness (SAE-SPEC §4)."""

from __future__ import annotations

from collections.abc import Mapping

from saemerge.errors import SaeMergeError


def macro_average(per_task: Mapping[str, float], weights: Mapping[str, float] | None = None) -> float:
    """Mean of per-task scores, weighted by the tasks' weights (default: each task weighs the
    same, whatever its size; SAE-SPEC §4). A task missing from `weights` weighs 1.

    Raises:
        SaeMergeError: no tasks.
    """
    if not per_task:
        raise SaeMergeError("no task scores to average (empty optimisation set?)")
    if not weights:
        return sum(float(v) for v in per_task.values()) / len(per_task)
    w = {t: float(weights.get(t, 1.0)) for t in per_task}
    return sum(w[t] * float(v) for t, v in per_task.items()) / sum(w.values())


def fitness(score: float, rho: float, gamma: float = 0.05) -> float:
    """``F = s + γ·ρ``: sparser models win ties and near-ties."""
    return float(score) + float(gamma) * float(rho)


# When γ is 0 (SAE-SPEC §7), decided here only. PSO's fitness is the macro accuracy while it
# searches; PSO and M2N2 both report the member with the best raw score, as their authors do
# (PSO's gbest; M2N2's authors' code reports the best training score, and its children are
# dense, so s + γρ would lean towards un-evolved pruned initial members). SAE uses its γ for both.
RAW_SCORE_FITNESS = ("pso",)
RAW_SCORE_REPORTED = ("pso", "m2n2")


def search_gamma(search: str, gamma: float) -> float:
    """γ of the fitness a search scores its candidates with while it runs: 0 for :data:`RAW_SCORE_FITNESS`."""
    return 0.0 if search in RAW_SCORE_FITNESS else gamma


def reported_gamma(search: str, gamma: float) -> float:
    """γ of the fitness that picks the search's reported model: 0 for :data:`RAW_SCORE_REPORTED`."""
    return 0.0 if search in RAW_SCORE_REPORTED else gamma
