from typing import List


def m2n2_select(
    run_uri: str,
    generation: int,
    archive: List[str],
    sample_uri: str,
    m2n2_children: int,
    m2n2_alpha: float,
    seed: int,
) -> List[str]:
    """Draw the generation's M2N2 matings (SAE-SPEC §7, M2N2), seeded by (seed, generation).

    Parent A by resource-shared fitness on this generation's sample, parent B by attraction
    to A, a SLERP weight t ~ U(0, 1) and a split point per child. Each order carries its
    parents' records, so the crossover inside the ParallelFor needs nothing but its loop item:
    the URI of the order's handoff file, RUN/gen-XX/handoff/order-<i>-<digest>.parquet.
    """
    from saemerge.config import as_int, typed
    from saemerge.steps import handoff
    from saemerge.steps.m2n2 import select_parents

    p = typed(m2n2_children=m2n2_children, m2n2_alpha=m2n2_alpha, seed=seed)
    generation = as_int("generation", generation)
    orders = select_parents(
        run_uri, generation, handoff.load(archive), sample_uri, p["m2n2_children"], p["m2n2_alpha"], p["seed"]
    )
    return handoff.save_each(run_uri, generation, "order", orders)
