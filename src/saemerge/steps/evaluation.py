"""Steps that score: the optimisation set of a generation, and scoring candidates through the score cache.

The pieces they use live beside them: the evaluator seam (:mod:`saemerge.steps.evaluator`:
:data:`EvaluatorFactory`, :func:`lm_eval_evaluator`), the score cache
(:mod:`saemerge.steps.score_cache`: :class:`ScoreCache`, :func:`cache_identity`) and the run's
settings from ``run.json`` (:mod:`saemerge.steps.settings`: :func:`run_opt_splits`,
:func:`task_weights`, :func:`code_opt_in`). Their names are re-exported here, the old path.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa

from saemerge import runlog, storage
from saemerge.config import RunConfig
from saemerge.core.fitness import fitness, macro_average
from saemerge.errors import SaeMergeError
from saemerge.evaluate.results import EvalResult
from saemerge.evaluate.taskspec import read_jsonl
from saemerge.runlog import RunLayout
from saemerge.steps.evaluator import Docs, EvaluatorFactory, Scorer, lm_eval_evaluator
from saemerge.steps.score_cache import ScoreCache, cache_identity
from saemerge.steps.settings import code_opt_in, run_opt_splits, task_weights

__all__ = [
    "Docs",
    "EvaluatorFactory",
    "ScoreCache",
    "Scorer",
    "cache_identity",
    "code_opt_in",
    "evaluate_candidates",
    "evaluate_on_sample",
    "fitness_gamma",
    "lm_eval_evaluator",
    "read_sample",
    "run_opt_splits",
    "ensure_generation_sample",
    "sample_optimisation_set",
    "score_models",
    "score_summary",
    "task_weights",
]

log = logging.getLogger(__name__)


def ensure_generation_sample(run: str, generation: int, data_uri: str, opt_sizes: Mapping[str, int], seed: int) -> str:
    """The URI of generation `generation`'s optimisation set in the run, drawn there first when it
    is not yet (:func:`saemerge.evaluate.sampling.sample_optimisation_set`, from the splits the
    run's ``opt_splits`` names: train/validation by default; never test)."""
    from saemerge.evaluate.sampling import sample_optimisation_set as draw
    from saemerge.steps.settings import tasks_of

    uri = RunLayout(run).sample(generation)
    if storage.exists(uri):
        return uri

    splits = run_opt_splits(run)
    with (
        tasks_of(run, list(opt_sizes)) as tasks,
        storage.local_input(data_uri) as data,
        storage.local_output(uri) as out,
    ):
        draw(tasks, dict(opt_sizes), data=data, seed=seed, generation=generation, out_dir=out, splits=splits)
    return uri


sample_optimisation_set = ensure_generation_sample  # the old name, kept for one release


def read_sample(sample_dir: Path) -> dict[str, list[dict]]:
    """The docs of a sample directory (``<task>.jsonl`` files), by task."""
    files = {p.name[: -len(".jsonl")]: p for p in sorted(Path(sample_dir).glob("*.jsonl"))}
    if not files:
        raise SaeMergeError(f"{sample_dir}: the sample holds no <task>.jsonl files")
    return {task: read_jsonl(path) for task, path in files.items()}


def score_models(
    cache: ScoreCache, records: Sequence[Mapping], docs: Docs, evaluator: EvaluatorFactory
) -> dict[str, tuple[EvalResult, set[tuple[str, str]]]]:
    """Per-example results of each record's model on `docs`, evaluating only what the cache lacks.

    The evaluator is opened once, on the first model that needs scoring, and serves them all.
    Every model is given the same docs with its cached rows, so the evaluator builds its tasks
    for the sample once and evaluates for each model only the examples it lacks.

    Returns:
        {content_hash: (EvalResult on exactly the docs' examples, the (task, example_id) keys
        evaluated by this call)}.
    """
    out: dict[str, tuple[EvalResult, set[tuple[str, str]]]] = {}
    with ExitStack() as stack:
        scorer: Scorer | None = None
        for record in records:
            digest = record["content_hash"]
            if digest in out:
                continue
            todo = cache.missing(digest, docs)
            fresh: set[tuple[str, str]] = set()
            if todo:
                if scorer is None:
                    scorer = stack.enter_context(evaluator(list(docs)))
                with storage.local_input(record["uri"]) as model_dir:
                    fresh = cache.add(digest, scorer.score(model_dir, docs, already_scored=cache.get(digest)))
            else:
                log.info("%s: all %d examples already scored", record["id"], sum(map(len, docs.values())))
            out[digest] = (cache.on(digest, docs, model=record["uri"]), fresh)
    return out


def evaluate_candidates(
    run: str,
    generation: int,
    stage: str,
    candidates: Sequence[Mapping],
    sample: str,
    *,
    gamma: float,
    evaluator: EvaluatorFactory,
) -> list[dict]:
    """Score candidates on a generation's optimisation set; fitness = macro + γ·ρ (SAE-SPEC §4),
    the macro average weighted by the tasks' weights (:func:`task_weights`).

    Discarded offspring pass through unscored. Writes the stage's per-example results to
    ``gen-XX/scores-<stage>.parquet`` (``init/`` for generation -1), with ``fresh`` true for
    the rows this call evaluated and false for those taken from the cache.
    """
    layout = RunLayout(run)
    weights = task_weights(run)
    todo = [c for c in candidates if c.get("status") != "discarded" and c.get("uri")]
    log.info("evaluate step: generation %d, stage %s: %d candidates to score", generation, stage, len(todo))
    results = {}
    if todo:
        with storage.local_input(sample) as sample_dir:
            results = score_models(ScoreCache.for_run(layout), todo, read_sample(sample_dir), evaluator)
    scored, tables = [], []
    for c in candidates:
        c = dict(c)
        if c.get("status") != "discarded" and c.get("uri"):
            result, fresh = results[c["content_hash"]]
            per_task = result.per_task
            c["scores"] = per_task
            c["score"] = macro_average(per_task, weights)
            c["fitness"] = fitness(c["score"], c["sparsity"], gamma)
            c["n_scored"] = len(result.per_example)
            table = result.to_table()
            n = table.num_rows
            tables.append(
                table.append_column("content_hash", pa.array([c["content_hash"]] * n))
                .append_column("model_id", pa.array([c["id"]] * n))
                .append_column("fresh", pa.array([(r.task, r.example_id) in fresh for r in result.per_example]))
            )
        scored.append(c)
    if tables:
        runlog.write_table(layout.new_scores(generation, stage), pa.concat_tables(tables))
    return scored


def score_summary(records: Sequence[Mapping]) -> dict[str, float]:
    """Figures for the UI's metrics panel: how many were scored, best and mean fitness."""
    fits = [r["fitness"] for r in records if r.get("fitness") is not None and not math.isnan(r["fitness"])]
    return {
        "scored": float(len(fits)),
        "best_fitness": max(fits) if fits else 0.0,
        "mean_fitness": sum(fits) / len(fits) if fits else 0.0,
    }


def fitness_gamma(config: RunConfig) -> float:
    """γ of the run's fitness while it searches (:func:`saemerge.core.fitness.search_gamma`): the
    run's ``gamma``; 0 for PSO, whose fitness is the macro accuracy (SAE-SPEC §7)."""
    from saemerge.core.fitness import search_gamma

    return search_gamma(config.search, config.gamma)


def evaluate_on_sample(run: str, generation: int, stage: str, candidates: Sequence[Mapping], sample: int) -> list[dict]:
    """What an evaluate step does: draw generation `sample`'s optimisation set (or read it back),
    then score `candidates` on it with lm-eval, with the run's γ, device, dtype and batch size.

    The sample is drawn here rather than by a step of its own (one task less per generation
    in the Workflow); drawing is deterministic and skipped when the sample is there already.
    """
    from saemerge.compute import measured
    from saemerge.steps.settings import run_config

    config = run_config(run)
    sample_uri = ensure_generation_sample(run, sample, config.data_uri, config.opt_sizes, config.seed)
    with measured(run, "evaluate", f"gen {generation} {stage}"):
        return evaluate_candidates(
            run,
            generation,
            stage,
            candidates,
            sample_uri,
            gamma=fitness_gamma(config),
            evaluator=lm_eval_evaluator(config.eval_device, config.eval_dtype, config.eval_batch_size, run=run),
        )
