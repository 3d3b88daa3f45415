from typing import List, NamedTuple

from kfp.dsl import Metrics, Output


def pso_update(
    run_uri: str,
    step: int,
    swarm: List[dict],
    moved: List[dict],
    scored: List[dict],
    metrics: Output[Metrics],
) -> NamedTuple("PsoState", [("swarm", List[dict]), ("gbest", List[dict])]):
    """Update the personal and global bests on this step's sample (SAE-SPEC §7) and record the step.

    A particle's personal best becomes its new position only when that scores strictly
    higher on this step's sample; the global best likewise (ties keep the incumbent).
    Writes RUN/init/ (step 0) or RUN/gen-XX/ (step XX+1): offspring.parquet (new positions),
    population.parquet (personal bests), swarm.parquet and metrics.json.

    Returns:
        swarm: the particles' states (the next step's loop items); gbest: [the global best].
    """
    from collections import namedtuple

    from saemerge.config import as_int
    from saemerge.steps.pso import update_swarm

    new_swarm, gbest, summary = update_swarm(run_uri, as_int("step", step), swarm, moved, scored)
    for key, value in summary.items():
        metrics.log_metric(key, value)
    return namedtuple("PsoState", ["swarm", "gbest"])(new_swarm, [gbest])
