from typing import List


def schedule_step(run_uri: str, generation: int, archive: List[str]) -> List[str]:
    """The sparsity s_t of `generation` on the cyclic schedule (SAE-SPEC §5), and the generation's pairs.

    Pairs the archive, already scored on this generation's sample, by a permutation seeded by
    (seed, generation) (SAE-SPEC §3). Each pair carries its parents' records and s_t, so the
    merge step inside the ParallelFor needs nothing but its loop item. The schedule's settings
    and the seed are the run's (run.json).

    Returns:
        One URI per pair: RUN/gen-XX/handoff/pair-<i>-<digest>.parquet.
    """
    from saemerge.config import as_int
    from saemerge.steps import handoff
    from saemerge.steps.population import schedule_and_pair

    generation = as_int("generation", generation)
    return handoff.save_each(run_uri, generation, "pair", schedule_and_pair(run_uri, generation, handoff.load(archive)))
