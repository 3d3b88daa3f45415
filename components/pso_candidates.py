from typing import List


def pso_candidates(moved: List[dict], swarm: List[dict]) -> List[dict]:
    """What a PSO step evaluates: the new positions, every personal best and the global best, each model once.

    Scored together on the step's sample, so each position is compared with its personal
    best on the same examples (the per-example cache makes re-scoring a best cheap).
    """
    from saemerge.steps.pso import candidates

    return candidates(moved, swarm)
