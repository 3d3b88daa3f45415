from typing import List


def pso_candidates(run_uri: str, step: int, moved: List[str], swarm: List[str]) -> List[str]:
    """What a PSO step evaluates: the new positions, every personal best and the global best, each model once.

    Scored together on the step's sample, so each position is compared with its personal
    best on the same examples (the per-example cache makes re-scoring a best cheap). Reads
    and writes handoff files: [RUN/gen-XX/handoff/candidates-<digest>.parquet], XX = step - 1.
    """
    from saemerge.config import as_int
    from saemerge.steps import handoff
    from saemerge.steps.pso import candidates

    step = as_int("step", step)
    return [handoff.save(run_uri, step - 1, "candidates", candidates(handoff.load(moved), handoff.load(swarm)))]
