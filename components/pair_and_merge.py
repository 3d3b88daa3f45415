from kfp.dsl import Model, Output


def pair_and_merge(run_uri: str, pair: str, child: Output[Model]) -> str:
    """Prune both parents to s_t, merge them with SAE, prune the child (SAE-SPEC §3).

    The child is published to RUN/models/<content-hash>/; a child identical to an archive
    member is discarded before evaluation. The merge's settings (scoring, β, attraction,
    measure, granularity, device) and the base are the run's (run.json).

    Args:
        pair: the URI of the pair (the schedule step's handoff: parents' records, s_t, index).

    Returns:
        The URI of the child's record (RUN/gen-XX/handoff/child-<i>-<digest>.parquet), with
        "status" = "discarded" and a "reason" when discarded.
    """
    from saemerge.compute import measured
    from saemerge.steps import handoff
    from saemerge.steps.models import pair_and_merge_with_run_settings
    from saemerge.steps.records import describe_model

    pair = handoff.load_one(pair)
    with measured(run_uri, "merge", f"gen {pair['generation']} pair {pair['index']}"):
        record = pair_and_merge_with_run_settings(run_uri, pair)
    describe_model(child, record)
    return handoff.save(run_uri, pair["generation"], f"child-{pair['index']}", [record])
