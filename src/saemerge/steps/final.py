"""The final step: the best archive member, the experts, the base and the baselines on the test sets (SAE-SPEC §6.3, §7)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import ExitStack

import pyarrow as pa

from saemerge import runlog, storage
from saemerge.config import BASELINES, SAE, TA_ALPHAS, model_name
from saemerge.core.fitness import RAW_SCORE_REPORTED, fitness, macro_average, reported_gamma
from saemerge.errors import SaeMergeError
from saemerge.evaluate.results import EvalResult
from saemerge.ops import checkpoint_sparsity, merge_checkpoints
from saemerge.runlog import RunLayout
from saemerge.steps.evaluation import read_sample, score_models
from saemerge.steps.evaluator import EvaluatorFactory
from saemerge.steps.records import find_recipe, input_identity, make_record, publish_model, without_none
from saemerge.steps.score_cache import ScoreCache
from saemerge.steps.settings import task_weights

log = logging.getLogger(__name__)


def optimisation_keys(layout: RunLayout) -> set[tuple[str, str]]:
    """(task, example id) of every optimisation example the run drew (all its generations' samples)."""
    keys: set[tuple[str, str]] = set()
    generation = 0
    while storage.exists(layout.sample(generation)):
        with storage.local_input(layout.sample(generation)) as sample_dir:
            keys |= {(t, str(d["id"])) for t, ds in read_sample(sample_dir).items() for d in ds}
        generation += 1
    return keys


def best_overall(
    cache: ScoreCache, archive: Sequence[Mapping], gamma: float, keys: set[tuple[str, str]] | None = None
) -> dict:
    """The member with the best fitness over every optimisation example it was scored on.

    Args:
        keys: the run's optimisation examples (:func:`optimisation_keys`); cached rows of other
            examples do not count: a shared cache also holds other runs' samples and test rows.
    """
    best, best_key = None, None
    for record in archive:
        cached = cache.get(record["content_hash"])
        if cached is not None and keys is not None:
            rows = [r for r in cached.per_example if (r.task, r.example_id) in keys]
            cached = EvalResult(rows) if rows else None
        weights = task_weights(cache.layout.root)
        score = macro_average(cached.per_task, weights) if cached else float(record["score"])
        key = (fitness(score, record["sparsity"], gamma), record["id"])
        if best_key is None or key[0] > best_key[0] or (key[0] == best_key[0] and key[1] < best_key[1]):
            best, best_key = dict(record, overall_score=score, overall_fitness=key[0]), key
    if best is None:
        raise SaeMergeError("final: the archive is empty")
    return best


RAW_SCORE_SEARCHES = RAW_SCORE_REPORTED  # the old name: searches that report the best raw score


def reported_member(
    cache: ScoreCache, archive: Sequence[Mapping], search: str, gamma: float, keys: set[tuple[str, str]] | None = None
) -> dict:
    """The search's reported model: :func:`best_overall` with the γ of
    :func:`saemerge.core.fitness.reported_gamma` (the run's for SAE, 0 for PSO and M2N2; SAE-SPEC §7)."""
    return best_overall(cache, archive, reported_gamma(search, gamma), keys)


def merge_baseline(run: str, method: str, experts: Sequence[str], base_uri: str, seed: int, **params) -> dict:
    """A baseline merge of the experts, content-addressed like every other model of the run."""
    key, record = find_recipe(
        run,
        op="merge",
        method=method,
        experts=[input_identity(e) for e in experts],
        base=input_identity(base_uri),
        seed=seed,
        **params,
    )
    if record is not None:
        return record

    def compute(out):
        with ExitStack() as stack:
            models = [stack.enter_context(storage.local_input(e)) for e in experts]
            base = stack.enter_context(storage.local_input(base_uri))
            summary = merge_checkpoints(method, models, out, base=base, seed=seed, **params)
            summary["sparsity"] = checkpoint_sparsity(out, base=base)["global"]
            return summary

    return publish_model(
        run,
        key,
        compute,
        lambda s: make_record(s["content_hash"], s["uri"], origin=f"{method} {params}", sparsity=s["sparsity"]),
    )


def _model_row(uri: str, origin: str) -> dict:
    """A record for an input model (base or expert): identity from its manifest."""
    return {"id": model_name(uri), "content_hash": input_identity(uri), "uri": uri, "origin": origin}


def final_evaluate(
    run: str,
    archive: Sequence[Mapping],
    experts: Sequence[str],
    base_uri: str,
    data_uri: str,
    test_sizes: Mapping[str, int],
    baselines: Sequence[str],
    *,
    seed: int,
    gamma: float,
    evaluator: EvaluatorFactory,
) -> list[dict]:
    """Evaluate the search's best model against the base, experts and baselines on the test sets.

    The search's row is named after it (``run.json``'s ``search``: sae, pso or m2n2); its model
    is the member of `archive` with the best fitness over every optimisation example it was
    scored on (:func:`reported_member`: fitness with γ for SAE, the raw score for PSO and M2N2).

    Writes ``final/results.parquet`` (one row per method; per-task accuracy and the macro
    average over tasks), ``final/scores.parquet`` (per example) and ``final/best.json``.

    Returns:
        Rows {"method", "id", "uri", "sparsity", "scores": {task: acc}, "macro"}.
    """
    from saemerge.evaluate.sampling import draw_test_set

    layout = RunLayout(run)
    tasks = list(test_sizes)
    if not storage.exists(layout.test_sample):
        from saemerge.steps.settings import tasks_of

        with (
            tasks_of(run, tasks) as taskset,
            storage.local_input(data_uri) as data,
            storage.local_output(layout.test_sample) as out,
        ):
            draw_test_set(taskset, dict(test_sizes), data=data, seed=seed, out_dir=out)

    entries: list[tuple[str, dict]] = [("base", _model_row(base_uri, "base"))]
    entries += [(f"expert:{model_name(e)}", _model_row(e, "expert")) for e in experts]
    for name in baselines:
        method, params = BASELINES[name]
        if name == "task_arithmetic":
            entries.append((name, choose_task_arithmetic(run, experts, base_uri, seed, evaluator)))
        else:
            entries.append((name, merge_baseline(run, method, experts, base_uri, seed, **params)))
    cache = ScoreCache.for_run(layout)
    search = layout.read_config().get("search", SAE) if storage.exists(layout.run_json) else SAE
    best = reported_member(cache, archive, search, gamma, optimisation_keys(layout))
    entries.append((search, best))

    with storage.local_input(layout.test_sample) as test_dir:
        docs = {t.removesuffix(".test"): ds for t, ds in read_sample(test_dir).items()}
        docs = {t: ds for t, ds in docs.items() if t in tasks}
        # Through the score cache: a resumed step, or another run sharing the cache, scores a
        # model (the base, an expert, a baseline merge) on the test set once.
        results = score_models(cache, [record for _, record in entries], docs, evaluator)
        rows, tables = [], []
        for method, record in entries:
            result = results[record["content_hash"]][0]
            per_task = result.per_task
            rows.append(
                without_none(
                    {
                        "method": method,
                        "id": record["id"],
                        "uri": record["uri"],
                        "sparsity": record.get("sparsity"),
                        "scores": per_task,
                        "macro": macro_average(per_task, task_weights(run)),
                        "origin": record.get("origin", ""),
                    }
                )
            )
            t = result.to_table()
            tables.append(t.append_column("method", pa.array([method] * t.num_rows)))
    runlog.write_table(layout.final("scores.parquet"), pa.concat_tables(tables))
    layout.write_results(rows)
    runlog.write_json(layout.final("best.json"), best)
    return rows


def choose_task_arithmetic(
    run: str, experts: Sequence[str], base_uri: str, seed: int, evaluator: EvaluatorFactory
) -> dict:
    """Task arithmetic with α chosen on generation 0's optimisation set from {0.3, 0.5, 0.7, 1.0}."""
    layout = RunLayout(run)
    candidates = [merge_baseline(run, "task_arithmetic", experts, base_uri, seed, alpha=a) for a in TA_ALPHAS]
    with storage.local_input(layout.sample(0)) as sample_dir:
        results = score_models(ScoreCache.for_run(layout), candidates, read_sample(sample_dir), evaluator)
    weights = task_weights(run)
    scored = [
        (macro_average(results[c["content_hash"]][0].per_task, weights), -a, c) for a, c in zip(TA_ALPHAS, candidates)
    ]
    score, neg_alpha, chosen = max(scored, key=lambda s: (s[0], s[1]))
    log.info("task arithmetic: alpha %.1f chosen (optimisation-set macro %.4f)", -neg_alpha, score)
    return dict(chosen, origin=f"task_arithmetic alpha={-neg_alpha:g}")
