from kfp.dsl import Model, Output


def pso_particle(run_uri: str, particle: dict, model: Output[Model]) -> str:
    """A particle's starting position (SAE-SPEC §7) in RUN/models/<content-hash>/.

    The checkpoint itself, or DARE of its task vector (drop rate and seed in `particle`).
    Content-addressed: a retry or a resumed run reuses the model already published. The base
    and the device are the run's (run.json).

    Returns:
        The URI of the position's record, with "particle" and "index"
        (RUN/init/handoff/position-<index>-<digest>.parquet).
    """
    from saemerge.compute import measured
    from saemerge.steps import handoff
    from saemerge.steps.pso import make_particle
    from saemerge.steps.records import describe_model
    from saemerge.steps.settings import run_config

    c = run_config(run_uri)
    with measured(run_uri, "pso_move", f"step 0 {particle['particle']}"):
        record = make_particle(run_uri, particle, base_uri=c.base_uri, device=c.merge_device)
    describe_model(model, record)
    return handoff.save(run_uri, -1, f"position-{record['index']}", [record])
