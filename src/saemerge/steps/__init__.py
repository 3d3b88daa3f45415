"""The steps of an SAE run, as plain functions over records and URIs (no kfp here).

Each kfp component in ``components/`` is a typed signature plus one call into this package;
:mod:`saemerge.pipeline.local` and the tests call the same functions. Every step is
idempotent: models are content-addressed with recipes, scores are cached per example, and
tables are rewritten whole, so a retry or a resumed run redoes no finished work.

Names are imported on first use: a light step (pairing, archive update) must not pay for
torch or lm-eval.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "archive_update": "saemerge.steps.population",
    "init_population": "saemerge.steps.population",
    "pair_parents": "saemerge.steps.population",
    "describe_model": "saemerge.steps.records",
    "pair_and_merge": "saemerge.steps.models",
    "prune_variant": "saemerge.steps.models",
    "evaluate_candidates": "saemerge.steps.scoring",
    "sample_optimisation_set": "saemerge.steps.scoring",
    "score_summary": "saemerge.steps.scoring",
    "final_evaluate": "saemerge.steps.final",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'saemerge.steps' has no attribute {name!r}")
