from kfp.dsl import Model, Output


def pso_move(
    run_uri: str,
    particle: str,
    step: int,
    base_uri: str,
    seed: int,
    w: float,
    c1: float,
    c2: float,
    device: str,
    position: Output[Model],
) -> str:
    """Move one particle (SAE-SPEC §7): v ← w v + c1 r1 (pbest − x) + c2 r2 (gbest − x), x ← x + v.

    Streams its position, velocity, personal best and the global best (all in `particle`)
    tensor by tensor; the new position (model dtype) goes to RUN/models/<content-hash>/, the
    velocity (float32) to RUN/velocities/<content-hash>/. Content-addressed: a retry reuses both.

    Args:
        particle: the URI of the particle's state (pso_update's handoff: its position,
            velocity, personal best and the global best).

    Returns:
        The URI of the new position's record, with "particle", "velocity", "r1" and "r2"
        (RUN/gen-XX/handoff/position-<index>-<digest>.parquet, XX = step - 1).
    """
    from saemerge.compute import measured
    from saemerge.config import as_int, typed
    from saemerge.steps import handoff
    from saemerge.steps.pso import move_particle
    from saemerge.steps.records import describe_model

    p = typed(seed=seed, pso_w=w, pso_c1=c1, pso_c2=c2, merge_device=device)
    step = as_int("step", step)
    particle = handoff.load_one(particle)
    with measured(run_uri, "pso_move", f"step {step} {particle['particle']}"):
        record = move_particle(
            run_uri,
            particle,
            step,
            base_uri=base_uri,
            seed=p["seed"],
            w=p["pso_w"],
            c1=p["pso_c1"],
            c2=p["pso_c2"],
            device=p["merge_device"],
        )
    describe_model(position, record)
    return handoff.save(run_uri, step - 1, f"position-{record['index']}", [record])
