from typing import List


def pair_parents(run_uri: str, generation: int, archive: List[str], s_t: float, seed: int) -> List[str]:
    """Pair the archive by a seeded random permutation (SAE-SPEC §3).

    Each pair carries its parents' records (with this generation's scores) and s_t, so the
    merge step inside the ParallelFor needs nothing but its loop item: the URI of the pair's
    handoff file, RUN/gen-XX/handoff/pair-<i>-<digest>.parquet (`archive` is handed over likewise).
    """
    from saemerge.config import as_int, typed
    from saemerge.steps import handoff
    from saemerge.steps.population import pair_parents as pair

    generation = as_int("generation", generation)
    pairs = pair(run_uri, generation, handoff.load(archive), s_t, typed(seed=seed)["seed"])
    return handoff.save_each(run_uri, generation, "pair", pairs)
