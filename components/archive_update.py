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
    from saemerge.config import as_int, typed
    from saemerge.steps.population import archive_update as update

    p = typed(archive_size=archive_size, competition=competition)
    new_archive, summary = update(run_uri, as_int("generation", generation), s_t, archive, offspring, **p)
    for key, value in summary.items():
        metrics.log_metric(key, value)
    return new_archive
