from typing import List

from kfp.dsl import Metrics, Output


def m2n2_update(
    run_uri: str, generation: int, archive: List[str], children: List[str], metrics: Output[Metrics]
) -> List[str]:
    """Let the children compete for the archive by resource-shared fitness (SAE-SPEC §7, M2N2).

    Each child, in child order, replaces the member with the lowest resource-shared fitness
    on this generation's sample (RUN/samples/gen-XX/) if its own is higher. Writes
    RUN/gen-XX/population.parquet, offspring.parquet and metrics.json; the new archive is
    handed over as [RUN/gen-XX/handoff/archive-<digest>.parquet]. The archive size and α are
    the run's (run.json).
    """
    from saemerge.config import as_int
    from saemerge.runlog import RunLayout
    from saemerge.steps import handoff
    from saemerge.steps.m2n2 import archive_update
    from saemerge.steps.settings import run_config

    c = run_config(run_uri)
    generation = as_int("generation", generation)
    new_archive, summary = archive_update(
        run_uri,
        generation,
        handoff.load(archive),
        handoff.load(children),
        RunLayout(run_uri).sample(generation),
        c.archive_size,
        c.m2n2_alpha,
    )
    for key, value in summary.items():
        metrics.log_metric(key, value)
    return [handoff.save(run_uri, generation, "archive", new_archive)]
