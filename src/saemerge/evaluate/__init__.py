"""Evaluation over lm-eval: task configs, sampling, and per-example scoring.

- :class:`Evaluator` scores checkpoints (``.score(model_dir, samples)``) and returns an
  :class:`EvalResult` with one :class:`ExampleResult` per example, per-task accuracy and
  the macro average.
- :func:`sample_optimisation_set` and :func:`test_subset` write the JSONL samples it scores.
- :data:`TASKS` lists the tasks: the tiny benchmark's ``saebench_math`` and
  ``saebench_multilingual``, and the real ``gsm8k_sae`` and ``mmlu_prox_sae``.

Heavy imports (lm-eval, torch) happen when these names are first used.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "Evaluator": "saemerge.evaluate.evaluator",
    "EvalResult": "saemerge.evaluate.results",
    "ExampleResult": "saemerge.evaluate.results",
    "sample_optimisation_set": "saemerge.evaluate.sampling",
    "test_subset": "saemerge.evaluate.sampling",
    "proportional_allocation": "saemerge.evaluate.sampling",
    "TASKS": "saemerge.evaluate.taskspec",
    "TaskSpec": "saemerge.evaluate.taskspec",
    "get_task": "saemerge.evaluate.taskspec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'saemerge.evaluate' has no attribute {name!r}")
