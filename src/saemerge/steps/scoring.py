"""Steps that score: the optimisation set of a generation, and lm-eval scoring with a per-example cache.

Scores are cached per (model content hash, task, example id) in
``RUN/cache/scores/<content-hash>.parquet`` (SAE-SPEC §4): re-scoring an archive member on
a new optimisation set evaluates only the examples it has not seen, and a resumed run
evaluates nothing twice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa

from saemerge import runlog, storage
from saemerge.core.fitness import fitness, macro_average

log = logging.getLogger(__name__)


def sample_uri(run: str, generation: int) -> str:
    return storage.join(run, "samples", f"gen-{int(generation):02d}")


def sample_optimisation_set(run: str, generation: int, data_uri: str, opt_sizes: Mapping[str, int], seed: int) -> str:
    """Draw generation `generation`'s optimisation set (train/validation only) into the run."""
    from saemerge.evaluate import sample_optimisation_set as draw

    uri = sample_uri(run, generation)
    if storage.exists(uri):
        return uri
    sizes = {task: int(n) for task, n in opt_sizes.items()}
    with storage.local_input(data_uri) as data, storage.local_output(uri) as out:
        draw(list(sizes), sizes, data=data, seed=int(seed), generation=int(generation), out_dir=out)
    return uri


def cache_uri(run: str, content_hash: str) -> str:
    return storage.join(run, "cache", "scores", f"{content_hash}.parquet")


def read_cached(run: str, content_hash: str):
    """Every per-example result of a model so far (an EvalResult), or None."""
    from saemerge.evaluate import EvalResult

    uri = cache_uri(run, content_hash)
    return EvalResult.from_table(runlog.read_table(uri)) if storage.exists(uri) else None


def load_samples(sample_dir: Path) -> dict[str, Path]:
    files = {p.name[: -len(".jsonl")]: p for p in sorted(Path(sample_dir).glob("*.jsonl"))}
    if not files:
        from saemerge.errors import SaeMergeError

        raise SaeMergeError(f"{sample_dir}: the sample holds no <task>.jsonl files")
    return files


def score_models(
    run: str,
    records: Sequence[Mapping],
    samples: Mapping[str, Path],
    *,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 16,
) -> dict[str, "object"]:
    """Per-example results of each record's model on `samples`, through the cache.

    Returns:
        {content_hash: (EvalResult restricted to the sample's examples,
                        the (task, example_id) keys evaluated by this call)}.
    """
    from saemerge.evaluate import EvalResult, Evaluator
    from saemerge.evaluate.taskspec import read_jsonl

    wanted = {task: {str(d["id"]) for d in read_jsonl(path)} for task, path in samples.items()}
    evaluator = None
    out = {}
    with ExitStack() as stack:
        for record in records:
            digest = record["content_hash"]
            if digest in out:
                continue
            cached = read_cached(run, digest)
            seen = {(r.task, r.example_id) for r in cached.per_example} if cached else set()
            missing = sum(1 for t, ids in wanted.items() for i in ids if (t, i) not in seen)
            fresh: set[tuple[str, str]] = set()
            if missing:
                if evaluator is None:
                    evaluator = stack.enter_context(Evaluator(list(samples), device=device, dtype=dtype, batch_size=batch_size))
                with storage.local_input(record["uri"]) as model_dir:
                    result = evaluator.score(model_dir, samples, already_scored=cached)
                merged = {(r.task, r.example_id): r for r in (cached.per_example if cached else [])}
                fresh = {(r.task, r.example_id) for r in result.per_example} - set(merged)
                merged.update({(r.task, r.example_id): r for r in result.per_example})
                cached = EvalResult(list(merged.values()))
                runlog.write_table(cache_uri(run, digest), cached.to_table())
            else:
                log.info("%s: all %d examples already scored", record["id"], sum(map(len, wanted.values())))
            out[digest] = (
                EvalResult([r for r in cached.per_example if r.example_id in wanted.get(r.task, ())], model=record["uri"]),
                fresh,
            )
    return out


def evaluate_candidates(
    run: str,
    generation: int,
    stage: str,
    candidates: Sequence[Mapping],
    sample: str,
    *,
    gamma: float = 0.05,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 16,
) -> list[dict]:
    """Score candidates on a generation's optimisation set; fitness = macro + γ·ρ (SAE-SPEC §4).

    Discarded offspring pass through unscored. Writes the stage's per-example results to
    ``gen-XX/scores-<stage>.parquet`` (``init/`` for generation -1), with ``fresh`` true for
    the rows this call evaluated and false for those taken from the cache.
    """
    todo = [c for c in candidates if c.get("status") != "discarded" and c.get("uri")]
    with storage.local_input(sample) as sample_dir:
        samples = load_samples(sample_dir)
        results = score_models(run, todo, samples, device=device, dtype=dtype, batch_size=batch_size) if todo else {}
    scored, tables = [], []
    for c in candidates:
        c = dict(c)
        if c.get("status") != "discarded" and c.get("uri"):
            result, fresh = results[c["content_hash"]]
            per_task = result.per_task
            c["scores"] = per_task
            c["score"] = macro_average(per_task)
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
        where = "init" if int(generation) < 0 else int(generation)
        runlog.write_table(storage.join(runlog.gen_dir(run, where), f"scores-{stage}.parquet"), pa.concat_tables(tables))
    return scored


def score_summary(records: Sequence[Mapping]) -> dict[str, float]:
    """Figures for the UI's metrics panel: how many were scored, best and mean fitness."""
    fits = [r["fitness"] for r in records if r.get("fitness") is not None and not math.isnan(r["fitness"])]
    return {
        "scored": float(len(fits)),
        "best_fitness": max(fits) if fits else 0.0,
        "mean_fitness": sum(fits) / len(fits) if fits else 0.0,
    }
