from typing import List

from kfp.dsl import Metrics, Output


def m2n2_update(
    run_uri: str,
    generation: int,
    archive: List[str],
    children: List[str],
    sample_uri: str,
    archive_size: int,
    m2n2_alpha: float,
    metrics: Output[Metrics],
) -> List[str]:
    """Let the children compete for the archive by resource-shared fitness (SAE-SPEC §7, M2N2).

    Each child, in child order, replaces the member with the lowest resource-shared fitness
    on this generation's sample if its own is higher. Writes RUN/gen-XX/population.parquet,
    offspring.parquet and metrics.json; the new archive is handed over as
    [RUN/gen-XX/handoff/archive-<digest>.parquet].
    """
    from saemerge.config import as_int, typed
    from saemerge.steps import handoff
    from saemerge.steps.m2n2 import archive_update

    p = typed(archive_size=archive_size, m2n2_alpha=m2n2_alpha)
    generation = as_int("generation", generation)
    new_archive, summary = archive_update(
        run_uri,
        generation,
        handoff.load(archive),
        handoff.load(children),
        sample_uri,
        p["archive_size"],
        p["m2n2_alpha"],
    )
    for key, value in summary.items():
        metrics.log_metric(key, value)
    return [handoff.save(run_uri, generation, "archive", new_archive)]
