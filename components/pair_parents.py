from typing import List


def pair_parents(run_uri: str, generation: int, archive: List[dict], s_t: float, seed: int) -> List[dict]:
    """Pair the archive by a seeded random permutation (SAE-SPEC §3).

    Each pair carries its parents' records (with this generation's scores) and s_t, so the
    merge step inside the ParallelFor needs nothing but its loop item.
    """
    from saemerge.config import as_int, typed
    from saemerge.steps.population import pair_parents as pair

    return pair(run_uri, as_int("generation", generation), archive, s_t, typed(seed=seed)["seed"])
