from kfp.dsl import Model, Output


def prune(run_uri: str, variant: dict, model: Output[Model]) -> str:
    """Prune one initial variant (SAE-SPEC §1) into RUN/models/<content-hash>/.

    Content-addressed: a retry or a resumed run reuses the model already published. The
    base, the measure and the device are the run's (run.json).

    Returns:
        The URI of the individual's record (id, content_hash, uri, origin, sparsity, ...):
        RUN/init/handoff/prune-<member id>-<digest>.parquet.
    """
    from saemerge.compute import measured
    from saemerge.steps import handoff
    from saemerge.steps.models import prune_variant
    from saemerge.steps.records import describe_model
    from saemerge.steps.settings import run_config

    config = run_config(run_uri)
    with measured(run_uri, "prune", variant["name"]):
        record = prune_variant(
            run_uri, variant, base_uri=config.base_uri, measure=config.measure, device=config.merge_device
        )
    describe_model(model, record)
    return handoff.save(run_uri, "init", f"prune-{record['id']}", [record])
