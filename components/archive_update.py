from typing import List

from kfp.dsl import Metrics, Output


def archive_update(
    run_uri: str,
    generation: int,
    s_t: float,
    archive: List[dict],
    offspring: List[dict],
    archive_size: int,
    competition: str,
    metrics: Output[Metrics],
) -> List[dict]:
    """Let offspring compete for the archive (SAE-SPEC §4) and record the generation.

    Generation -1 builds the initial archive: the best `archive_size` variants by fitness.
    Writes RUN/gen-XX/population.parquet, offspring.parquet and metrics.json.
    """
    from saemerge import steps

    new_archive, summary = steps.archive_update(
        run_uri, int(generation), s_t, archive, offspring, int(archive_size), competition
    )
    for key, value in summary.items():
        metrics.log_metric(key, value)
    return new_archive
