from typing import List

from kfp.dsl import Metrics, Output


def archive_update(
    run_uri: str,
    generation: int,
    s_t: float,
    archive: List[str],
    offspring: List[str],
    archive_size: int,
    competition: str,
    metrics: Output[Metrics],
) -> List[str]:
    """Let offspring compete for the archive (SAE-SPEC §4) and record the generation.

    Generation -1 builds the initial archive: the best `archive_size` variants by fitness.
    Writes RUN/gen-XX/population.parquet, offspring.parquet and metrics.json. `archive`,
    `offspring` and the new archive are handed over as URIs (RUN/gen-XX/handoff/archive-<digest>.parquet).
    """
    from saemerge.config import as_int, typed
    from saemerge.steps import handoff
    from saemerge.steps.population import archive_update as update

    p = typed(archive_size=archive_size, competition=competition)
    generation = as_int("generation", generation)
    new_archive, summary = update(run_uri, generation, s_t, handoff.load(archive), handoff.load(offspring), **p)
    for key, value in summary.items():
        metrics.log_metric(key, value)
    return [handoff.save(run_uri, generation, "archive", new_archive)]
