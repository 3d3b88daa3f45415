from typing import List

from kfp.dsl import Metrics, Output


def evaluate(
    run_uri: str,
    generation: int,
    stage: str,
    candidates: List[str],
    sample_uri: str,
    gamma: float,
    device: str,
    dtype: str,
    batch_size: int,
    metrics: Output[Metrics],
) -> List[str]:
    """Score candidates on the optimisation set with lm-eval (runs in the GPU image).

    Per-example results are cached by (model content hash, example id): only examples a
    model has not seen are evaluated. Writes RUN/gen-XX/scores-<stage>.parquet.

    Args:
        candidates: URIs of the candidates' records (handoff files, read in order).

    Returns:
        [the URI of RUN/gen-XX/handoff/scored-<stage>-<digest>.parquet]: the candidates with per-task
        scores, macro score and fitness = score + γ·ρ.
    """
    from saemerge.compute import measured
    from saemerge.config import as_int, typed
    from saemerge.steps import handoff
    from saemerge.steps.evaluation import evaluate_candidates, lm_eval_evaluator, score_summary

    p = typed(gamma=gamma, eval_device=device, eval_dtype=dtype, eval_batch_size=batch_size)
    generation = as_int("generation", generation)
    with measured(run_uri, "evaluate", f"gen {generation} {stage}"):
        scored = evaluate_candidates(
            run_uri,
            generation,
            stage,
            handoff.load(candidates),
            sample_uri,
            gamma=p["gamma"],
            evaluator=lm_eval_evaluator(p["eval_device"], p["eval_dtype"], p["eval_batch_size"]),
        )
    for key, value in score_summary(scored).items():
        metrics.log_metric(key, value)
    return [handoff.save(run_uri, generation, f"scored-{stage}", scored)]
