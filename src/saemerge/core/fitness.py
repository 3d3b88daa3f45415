"""Performance and fitness (SAE-SPEC §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from saemerge.errors import SaeMergeError


def macro_average(per_task: Mapping[str, float]) -> float:
    """Mean of per-task scores: each task weighs the same, whatever its size.

    Raises:
        SaeMergeError: no tasks.
    """
    if not per_task:
        raise SaeMergeError("no task scores to average (empty optimisation set?)")
    return sum(float(v) for v in per_task.values()) / len(per_task)


def task_accuracies(per_example: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Accuracy per task from per-example results (1/0 or partial credit).

    Raises:
        SaeMergeError: a task without examples.
    """
    out = {}
    for task, results in per_example.items():
        if len(results) == 0:
            raise SaeMergeError(f"task {task!r} has no scored examples")
        out[task] = sum(float(r) for r in results) / len(results)
    return out


def fitness(score: float, rho: float, gamma: float = 0.05) -> float:
    """``F = s + γ·ρ``: sparser models win ties and near-ties."""
    return float(score) + float(gamma) * float(rho)
