"""The steps of an SAE run, as plain functions over records and URIs (no kfp here).

Each kfp component in ``components/`` is a typed signature plus one call into this package;
:mod:`saemerge.pipeline.local` and the tests call the same functions. Every step is
idempotent: models are content-addressed with recipes, scores are cached per example, and
tables are rewritten whole, so a retry or a resumed run redoes no finished work.
"""

from saemerge.steps.final import final_evaluate
from saemerge.steps.models import pair_and_merge, prune_variant
from saemerge.steps.population import archive_update, init_population, pair_parents
from saemerge.steps.records import describe_model
from saemerge.steps.scoring import evaluate_candidates, sample_optimisation_set, score_summary

__all__ = [
    "archive_update",
    "describe_model",
    "evaluate_candidates",
    "final_evaluate",
    "init_population",
    "pair_and_merge",
    "pair_parents",
    "prune_variant",
    "sample_optimisation_set",
    "score_summary",
]
