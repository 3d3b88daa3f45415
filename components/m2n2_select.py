from typing import List


def m2n2_select(run_uri: str, generation: int, archive: List[str]) -> List[str]:
    """Draw the generation's M2N2 matings (SAE-SPEC §7, M2N2), seeded by (seed, generation).

    Parent A by resource-shared fitness on this generation's sample (RUN/samples/gen-XX/, drawn
    by the archive's evaluate step), parent B by attraction to A, a SLERP weight t ~ U(0, 1)
    and a split point per child. Each order carries its parents' records, so the crossover
    inside the ParallelFor needs nothing but its loop item: the URI of the order's handoff
    file, RUN/gen-XX/handoff/order-<i>-<digest>.parquet. The number of children, α and the
    seed are the run's (run.json).
    """
    from saemerge.config import as_int
    from saemerge.runlog import RunLayout
    from saemerge.steps import handoff
    from saemerge.steps.m2n2 import select_parents
    from saemerge.steps.settings import run_config

    c = run_config(run_uri)
    generation = as_int("generation", generation)
    sample_uri = RunLayout(run_uri).sample(generation)
    orders = select_parents(
        run_uri, generation, handoff.load(archive), sample_uri, c.m2n2_children, c.m2n2_alpha, c.seed
    )
    return handoff.save_each(run_uri, generation, "order", orders)
