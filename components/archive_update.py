from typing import List

from kfp.dsl import Metrics, Output


def archive_update(
    run_uri: str, generation: int, archive: List[str], offspring: List[str], metrics: Output[Metrics]
) -> List[str]:
    """Let offspring compete for the archive (SAE-SPEC §4) and record the generation.

    Generation -1 builds the initial archive: the best `archive_size` variants by fitness.
    Writes RUN/gen-XX/population.parquet, offspring.parquet and metrics.json (with the
    generation's s_t). `archive`, `offspring` and the new archive are handed over as URIs
    (RUN/gen-XX/handoff/archive-<digest>.parquet); the archive size, the competition and the
    schedule are the run's (run.json).
    """
    from saemerge.config import as_int
    from saemerge.steps import handoff
    from saemerge.steps.population import archive_update as update
    from saemerge.steps.population import scheduled_sparsity
    from saemerge.steps.settings import run_config

    config = run_config(run_uri)
    generation = as_int("generation", generation)
    new_archive, summary = update(
        run_uri,
        generation,
        scheduled_sparsity(config, generation),
        handoff.load(archive),
        handoff.load(offspring),
        archive_size=config.archive_size,
        competition=config.competition,
    )
    for key, value in summary.items():
        metrics.log_metric(key, value)
    return [handoff.save(run_uri, generation, "archive", new_archive)]
