from kfp.dsl import Model, Output


def pso_move(run_uri: str, particle: str, step: int, position: Output[Model]) -> str:
    """Move one particle (SAE-SPEC §7): v ← w v + c1 r1 (pbest − x) + c2 r2 (gbest − x), x ← x + v.

    Streams its position, velocity, personal best and the global best (all in `particle`)
    tensor by tensor; the new position (model dtype) goes to RUN/models/<content-hash>/, the
    velocity (float32) to RUN/velocities/<content-hash>/. Content-addressed: a retry reuses both.
    The base, the seed, w, c1, c2 and the device are the run's (run.json).

    Args:
        particle: the URI of the particle's state (pso_update's handoff: its position,
            velocity, personal best and the global best).

    Returns:
        The URI of the new position's record, with "particle", "velocity", "r1" and "r2"
        (RUN/gen-XX/handoff/position-<index>-<digest>.parquet, XX = step - 1).
    """
    from saemerge.compute import measured
    from saemerge.config import as_int
    from saemerge.steps import handoff
    from saemerge.steps.pso import move_particle
    from saemerge.steps.records import describe_model
    from saemerge.steps.settings import run_config

    c = run_config(run_uri)
    step = as_int("step", step)
    particle = handoff.load_one(particle)
    with measured(run_uri, "pso_move", f"step {step} {particle['particle']}"):
        record = move_particle(
            run_uri,
            particle,
            step,
            base_uri=c.base_uri,
            seed=c.seed,
            w=c.pso_w,
            c1=c.pso_c1,
            c2=c.pso_c2,
            device=c.merge_device,
        )
    describe_model(position, record)
    return handoff.save(run_uri, step - 1, f"position-{record['index']}", [record])
