from kfp.dsl import Model, Output


def pair_and_merge(
    run_uri: str,
    pair: str,
    base_uri: str,
    scoring: str,
    beta: float,
    attraction: str,
    measure: str,
    granularity: str,
    device: str,
    child: Output[Model],
) -> str:
    """Prune both parents to s_t, merge them with SAE, prune the child (SAE-SPEC §3).

    The child is published to RUN/models/<content-hash>/; a child identical to an archive
    member is discarded before evaluation.

    Args:
        pair: the URI of the pair (pair_parents' handoff: parents' records, s_t, index).

    Returns:
        The URI of the child's record (RUN/gen-XX/handoff/child-<i>-<digest>.parquet), with
        "status" = "discarded" and a "reason" when discarded.
    """
    from saemerge.compute import measured
    from saemerge.config import typed
    from saemerge.steps import handoff
    from saemerge.steps.models import pair_and_merge as merge
    from saemerge.steps.records import describe_model

    pair = handoff.load_one(pair)
    p = typed(
        scoring=scoring, beta=beta, attraction=attraction, measure=measure, granularity=granularity, merge_device=device
    )
    with measured(run_uri, "merge", f"gen {pair['generation']} pair {pair['index']}"):
        record = merge(run_uri, pair, base_uri=base_uri, device=p.pop("merge_device"), **p)
    describe_model(child, record)
    return handoff.save(run_uri, pair["generation"], f"child-{pair['index']}", [record])
