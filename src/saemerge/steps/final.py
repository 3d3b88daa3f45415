"""The final step: the best archive member, the experts, the base and the baselines on the test sets (SAE-SPEC §6.3, §7)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import ExitStack

import pyarrow as pa

from saemerge import runlog, storage
from saemerge.core.fitness import fitness, macro_average
from saemerge.errors import SaeMergeError, unknown_name
from saemerge.ops import checkpoint_sparsity, merge_checkpoints
from saemerge.steps.population import model_name
from saemerge.steps.records import find_recipe, input_identity, make_record, publish_model, without_none
from saemerge.steps.scoring import load_samples, read_cached, sample_uri, score_models

log = logging.getLogger(__name__)

# Baseline name in results -> (merge method, fixed parameters). Task arithmetic's α is
# chosen on the optimisation set from TA_ALPHAS (SAE-SPEC §7).
BASELINES = {
    "weight_average": ("linear", {}),
    "task_arithmetic": ("task_arithmetic", {}),
    "ties": ("ties", {"density": 0.2, "alpha": 1.0}),
    "dare_linear": ("dare_linear", {"drop_p": 0.8}),
    "dare_ties": ("dare_ties", {"drop_p": 0.8}),
    "rankmean": ("rankmean", {}),
}
TA_ALPHAS = (0.3, 0.5, 0.7, 1.0)


def best_overall(run: str, archive: Sequence[Mapping], gamma: float) -> dict:
    """The member with the best fitness over every optimisation example it was scored on."""
    best, best_key = None, None
    for record in archive:
        cached = read_cached(run, record["content_hash"])
        score = macro_average(cached.per_task) if cached else float(record["score"])
        key = (fitness(score, record["sparsity"], gamma), record["id"])
        if best_key is None or key[0] > best_key[0] or (key[0] == best_key[0] and key[1] < best_key[1]):
            best, best_key = dict(record, overall_score=score, overall_fitness=key[0]), key
    if best is None:
        raise SaeMergeError("final: the archive is empty")
    return best


def merge_baseline(run: str, method: str, experts: Sequence[str], base_uri: str, seed: int, **params) -> dict:
    """A baseline merge of the experts, content-addressed like every other model of the run."""
    key, record = find_recipe(
        run, op="merge", method=method, experts=[input_identity(e) for e in experts],
        base=input_identity(base_uri), seed=int(seed), **params,
    )
    if record is not None:
        return record

    def compute(out):
        with ExitStack() as stack:
            models = [stack.enter_context(storage.local_input(e)) for e in experts]
            base = stack.enter_context(storage.local_input(base_uri))
            summary = merge_checkpoints(method, models, out, base=base, seed=int(seed), **params)
            summary["sparsity"] = checkpoint_sparsity(out, base=base)["global"]
            return summary

    return publish_model(
        run, key, compute, lambda s: make_record(s["content_hash"], s["uri"], origin=f"{method} {params}", sparsity=s["sparsity"])
    )


def _model_row(run: str, uri: str, origin: str) -> dict:
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
    seed: int = 0,
    gamma: float = 0.05,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 16,
) -> list[dict]:
    """Evaluate SAE's best member against the base, experts and baselines on the test sets.

    Writes ``final/results.parquet`` (one row per method; per-task accuracy and the macro
    average over tasks) and ``final/scores.parquet`` (per example).

    Returns:
        Rows {"method", "id", "uri", "sparsity", "scores": {task: acc}, "macro"}.
    """
    from saemerge.evaluate import Evaluator, test_subset

    for name in baselines:
        if name not in BASELINES:
            raise unknown_name("baseline", name, BASELINES)
    tasks = list(test_sizes)
    final_dir = storage.join(run, "final")
    test_uri = storage.join(final_dir, "test-sample")
    if not storage.exists(test_uri):
        with storage.local_input(data_uri) as data, storage.local_output(test_uri) as out:
            test_subset(tasks, {t: int(n) for t, n in test_sizes.items()}, data=data, seed=int(seed), out_dir=out)

    entries: list[tuple[str, dict]] = [("base", _model_row(run, base_uri, "base"))]
    entries += [(f"expert:{model_name(e)}", _model_row(run, e, "expert")) for e in experts]
    for name in baselines:
        method, params = BASELINES[name]
        if name == "task_arithmetic":
            entries.append((name, choose_task_arithmetic(run, experts, base_uri, seed, device, dtype, batch_size)))
        else:
            entries.append((name, merge_baseline(run, method, experts, base_uri, seed, **params)))
    best = best_overall(run, archive, gamma)
    entries.append(("sae", best))

    with storage.local_input(test_uri) as test_dir:
        samples = {t: p for t, p in load_samples(test_dir).items() if t.removesuffix(".test") in tasks}
        samples = {t.removesuffix(".test"): p for t, p in samples.items()}
        rows, tables = [], []
        with Evaluator(tasks, device=device, dtype=dtype, batch_size=batch_size) as ev:
            for method, record in entries:
                with storage.local_input(record["uri"]) as model_dir:
                    result = ev.score(model_dir, samples)
                per_task = result.per_task
                rows.append(without_none({
                    "method": method, "id": record["id"], "uri": record["uri"], "sparsity": record.get("sparsity"),
                    "scores": per_task, "macro": macro_average(per_task), "origin": record.get("origin", ""),
                }))
                t = result.to_table()
                tables.append(t.append_column("method", pa.array([method] * t.num_rows)))
    runlog.write_table(storage.join(final_dir, "scores.parquet"), pa.concat_tables(tables))
    runlog.write_table(storage.join(final_dir, "results.parquet"), results_table(rows))
    runlog.write_json(storage.join(final_dir, "best.json"), best)
    return rows


def results_table(rows: Sequence[Mapping]) -> pa.Table:
    tasks = sorted({t for r in rows for t in r["scores"]})
    cols = {
        "method": [r["method"] for r in rows],
        "id": [r["id"] for r in rows],
        "uri": [r["uri"] for r in rows],
        "sparsity": pa.array([r.get("sparsity") for r in rows], pa.float64()),
        **{f"score.{t}": pa.array([r["scores"].get(t) for r in rows], pa.float64()) for t in tasks},
        "macro": pa.array([r["macro"] for r in rows], pa.float64()),
    }
    return pa.table(cols)


def choose_task_arithmetic(run, experts, base_uri, seed, device, dtype, batch_size) -> dict:
    """Task arithmetic with α chosen on generation 0's optimisation set from {0.3, 0.5, 0.7, 1.0}."""
    candidates = [merge_baseline(run, "task_arithmetic", experts, base_uri, seed, alpha=a) for a in TA_ALPHAS]
    with storage.local_input(sample_uri(run, 0)) as sample_dir:
        results = score_models(run, candidates, load_samples(sample_dir), device=device, dtype=dtype, batch_size=batch_size)
    scored = [(macro_average(results[c["content_hash"]][0].per_task), -a, c) for a, c in zip(TA_ALPHAS, candidates)]
    score, neg_alpha, chosen = max(scored, key=lambda s: (s[0], s[1]))
    log.info("task arithmetic: alpha %.1f chosen (optimisation-set macro %.4f)", -neg_alpha, score)
    return dict(chosen, origin=f"task_arithmetic alpha={-neg_alpha:g}")
