from typing import List

from kfp.dsl import Metrics, Output


def evaluate(
    run_uri: str, generation: int, stage: str, candidates: List[str], sample: int, metrics: Output[Metrics]
) -> List[str]:
    """Score candidates on an optimisation set with lm-eval (runs in the GPU image).

    Draws the optimisation set of generation `sample` first (seeded by (seed, sample); kept
    in RUN/samples/gen-XX/, so a second evaluate on it reads it back). Per-example results are
    cached by (model content hash, example id): only examples a model has not seen are
    evaluated. Writes RUN/gen-XX/scores-<stage>.parquet. γ, the device, dtype and batch size
    are the run's (run.json).

    Args:
        candidates: URIs of the candidates' records (handoff files, read in order).
        sample: whose optimisation set: the generation (SAE, M2N2; 0 for the initial
            population) or the PSO step.

    Returns:
        [the URI of RUN/gen-XX/handoff/scored-<stage>-<digest>.parquet]: the candidates with per-task
        scores, macro score and fitness = score + γ·ρ.
    """
    from saemerge.config import as_int
    from saemerge.steps import handoff
    from saemerge.steps.evaluation import evaluate_on_sample, score_summary

    generation = as_int("generation", generation)
    scored = evaluate_on_sample(run_uri, generation, stage, handoff.load(candidates), as_int("sample", sample))
    for key, value in score_summary(scored).items():
        metrics.log_metric(key, value)
    return [handoff.save(run_uri, generation, f"scored-{stage}", scored)]
