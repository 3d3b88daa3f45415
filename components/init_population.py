from typing import List

from kfp.dsl import Metrics, Output


def init_population(
    run_uri: str,
    experts: List[str],
    base_uri: str,
    s_min: float,
    s_max: float,
    include_base: bool,
    config: dict,
    metrics: Output[Metrics],
) -> List[dict]:
    """Write run.json and list the initial sparse variants (SAE-SPEC §6.1).

    Each expert (and the base when `include_base`) is expanded at sparsities
    {0, s_min, (s_min+s_max)/2, s_max}.

    Returns:
        One dict per variant: {"source": URI, "name": str, "sparsity": float}.
    """
    from saemerge import steps

    variants = steps.init_population(run_uri, experts, base_uri, s_min, s_max, include_base, config)
    metrics.log_metric("variants", len(variants))
    return variants
