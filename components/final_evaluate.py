from typing import List

from kfp.dsl import Metrics, Output


def final_evaluate(
    run_uri: str,
    archive: List[dict],
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
) -> List[dict]:
    """Evaluate the best archive member, the base, the experts and the baselines on the test sets.

    The best member has the best fitness over every optimisation example it was scored on
    (SAE-SPEC §6.3). Baselines are merged here (content-addressed); task arithmetic picks
    its α on the optimisation set. Writes RUN/final/results.parquet.
    """
    from saemerge import steps

    rows = steps.final_evaluate(
        run_uri, archive, experts, base_uri, data_uri, test_sizes, baselines, seed=int(seed),
        gamma=gamma, device=device, dtype=dtype, batch_size=int(batch_size),
    )
    for row in rows:
        metrics.log_metric(f"{row['method']}.macro", row["macro"])
    return rows
