from typing import List

from kfp.dsl import Metrics, Output


def m2n2_update(
    run_uri: str,
    generation: int,
    archive: List[dict],
    children: List[dict],
    sample_uri: str,
    archive_size: int,
    m2n2_alpha: float,
    metrics: Output[Metrics],
) -> List[dict]:
    """Let the children compete for the archive by resource-shared fitness (SAE-SPEC §7, M2N2).

    Each child, in child order, replaces the member with the lowest resource-shared fitness
    on this generation's sample if its own is higher. Writes RUN/gen-XX/population.parquet,
    offspring.parquet and metrics.json.
    """
    from saemerge.config import as_int, typed
    from saemerge.steps.m2n2 import archive_update

    p = typed(archive_size=archive_size, m2n2_alpha=m2n2_alpha)
    new_archive, summary = archive_update(
        run_uri, as_int("generation", generation), archive, children, sample_uri, p["archive_size"], p["m2n2_alpha"]
    )
    for key, value in summary.items():
        metrics.log_metric(key, value)
    return new_archive
