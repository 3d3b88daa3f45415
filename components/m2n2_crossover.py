from kfp.dsl import Model, Output


def m2n2_crossover(run_uri: str, order: str, child: Output[Model]) -> str:
    """SLERP crossover of two parents with a split point (SAE-SPEC §7, M2N2), in weight space.

    The child is published to RUN/models/<content-hash>/ (a retry or resume reuses it); a
    child identical to an archive member is discarded before evaluation. The base, the
    measure and the device are the run's (run.json).

    Args:
        order: the URI of the mating order (m2n2_select's handoff: parents' records, t, split).

    Returns:
        The URI of the child's record (RUN/gen-XX/handoff/child-<i>-<digest>.parquet), with
        "status" = "discarded" and a "reason" when discarded.
    """
    from saemerge.compute import measured
    from saemerge.steps import handoff
    from saemerge.steps.m2n2 import crossover
    from saemerge.steps.records import describe_model
    from saemerge.steps.settings import run_config

    c = run_config(run_uri)
    order = handoff.load_one(order)
    with measured(run_uri, "crossover", f"gen {order['generation']} child {order['index']}"):
        record = crossover(run_uri, order, base_uri=c.base_uri, measure=c.measure, device=c.merge_device)
    describe_model(child, record)
    return handoff.save(run_uri, order["generation"], f"child-{order['index']}", [record])
