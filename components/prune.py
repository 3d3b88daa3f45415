from kfp.dsl import Model, Output


def prune(run_uri: str, variant: dict, base_uri: str, measure: str, device: str, model: Output[Model]) -> dict:
    """Prune one initial variant (SAE-SPEC §1) into RUN/models/<content-hash>/.

    Content-addressed: a retry or a resumed run reuses the model already published.

    Returns:
        The individual's record (id, content_hash, uri, origin, sparsity, ...).
    """
    from saemerge import steps

    record = steps.prune_variant(run_uri, variant, base_uri=base_uri, measure=measure, device=device)
    steps.describe_model(model, record)
    return record
