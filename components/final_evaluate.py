from typing import List

from kfp.dsl import Metrics, Model, Output


def final_evaluate(
    run_uri: str,
    archive: List[str],
    experts: List[str],
    base_uri: str,
    data_uri: str,
    test_sizes: dict,
    baselines: List[str],
    seed: int,
    gamma: float,
    device: str,
    dtype: str,
    batch_size: int,
    metrics: Output[Metrics],
    best_model: Output[Model],
) -> List[dict]:
    """Evaluate the best archive member, the base, the experts and the baselines on the test sets.

    The best member has the best fitness over every optimisation example it was scored on
    (SAE-SPEC §6.3). Baselines are merged here (content-addressed); task arithmetic picks
    its α on the optimisation set. Writes RUN/final/results.parquet.

    `best_model` describes the best member's checkpoint (its URI and content hash in the
    metadata, a pointer file as the artifact): the search's result as a Kubeflow Model.
    """
    from saemerge.compute import measured
    from saemerge.config import typed
    from saemerge.steps import handoff
    from saemerge.steps.evaluation import lm_eval_evaluator
    from saemerge.steps.final import final_evaluate as final
    from saemerge.steps.records import describe_best

    p = typed(
        test_sizes=test_sizes,
        baselines=baselines,
        seed=seed,
        gamma=gamma,
        eval_device=device,
        eval_dtype=dtype,
        eval_batch_size=batch_size,
    )
    with measured(run_uri, "final_evaluate"):
        rows = final(
            run_uri,
            handoff.load(archive),
            experts,
            base_uri,
            data_uri,
            p["test_sizes"],
            p["baselines"],
            seed=p["seed"],
            gamma=p["gamma"],
            evaluator=lm_eval_evaluator(p["eval_device"], p["eval_dtype"], p["eval_batch_size"], run=run_uri),
        )
    for row in rows:
        metrics.log_metric(f"{row['method']}.macro", row["macro"])
    describe_best(best_model, run_uri)
    return rows
