from typing import List, NamedTuple

from kfp.dsl import Metrics, Output


def pso_update(
    run_uri: str,
    step: int,
    swarm: List[str],
    moved: List[str],
    scored: List[str],
    metrics: Output[Metrics],
) -> NamedTuple("PsoState", [("swarm", List[str]), ("gbest", List[str])]):
    """Update the personal and global bests on this step's sample (SAE-SPEC §7) and record the step.

    A particle's personal best becomes its new position only when that scores strictly
    higher on this step's sample; the global best likewise (ties keep the incumbent).
    Writes RUN/init/ (step 0) or RUN/gen-XX/ (step XX+1): offspring.parquet (new positions),
    population.parquet (personal bests), swarm.parquet and metrics.json.

    Returns:
        swarm: the particles' states (the next step's loop items), one handoff file each
        (RUN/gen-XX/handoff/particle-<i>-<digest>.parquet); gbest: [the global best's handoff file].
    """
    from collections import namedtuple

    from saemerge.config import as_int
    from saemerge.steps import handoff
    from saemerge.steps.pso import update_swarm

    step = as_int("step", step)
    new_swarm, gbest, summary = update_swarm(
        run_uri, step, handoff.load(swarm), handoff.load(moved), handoff.load(scored)
    )
    for key, value in summary.items():
        metrics.log_metric(key, value)
    return namedtuple("PsoState", ["swarm", "gbest"])(
        handoff.save_each(run_uri, step - 1, "particle", new_swarm), [handoff.save(run_uri, step - 1, "gbest", [gbest])]
    )
