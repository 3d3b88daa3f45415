from kfp.dsl import Model, Output


def pso_particle(run_uri: str, particle: dict, base_uri: str, device: str, model: Output[Model]) -> str:
    """A particle's starting position (SAE-SPEC §7) in RUN/models/<content-hash>/.

    The checkpoint itself, or DARE of its task vector (drop rate and seed in `particle`).
    Content-addressed: a retry or a resumed run reuses the model already published.

    Returns:
        The URI of the position's record, with "particle" and "index"
        (RUN/init/handoff/position-<index>-<digest>.parquet).
    """
    from saemerge.compute import measured
    from saemerge.config import typed
    from saemerge.steps import handoff
    from saemerge.steps.pso import make_particle
    from saemerge.steps.records import describe_model

    p = typed(merge_device=device)
    with measured(run_uri, "pso_move", f"step 0 {particle['particle']}"):
        record = make_particle(run_uri, particle, base_uri=base_uri, device=p["merge_device"])
    describe_model(model, record)
    return handoff.save(run_uri, -1, f"position-{record['index']}", [record])
