from typing import List

from kfp.dsl import Metrics, Output


def m2n2_init(
    run_uri: str,
    experts: List[str],
    base_uri: str,
    data_uri: str,
    opt_sizes: dict,
    test_sizes: dict,
    opt_splits: str,
    steps: int,
    archive_size: int,
    s_min: float,
    s_max: float,
    gamma: float,
    measure: str,
    include_base: bool,
    baselines: List[str],
    seed: int,
    merge_device: str,
    eval_device: str,
    eval_dtype: str,
    eval_batch_size: int,
    score_cache: str,
    tasks_uri: str,
    task_code: bool,
    m2n2_children: int,
    m2n2_alpha: float,
    metrics: Output[Metrics],
) -> List[dict]:
    """Validate the M2N2 run's parameters, write run.json (search m2n2), list SAE's initial variants.

    M2N2 starts from SAE's initial archive (SAE-SPEC §7, M2N2; §6.1): each expert (and the
    base when `include_base`) at sparsities {0, s_min, (s_min+s_max)/2, s_max}.

    Returns:
        One dict per variant: {"source": URI, "name": str, "sparsity": float}.
    """
    from saemerge.config import M2N2, RunConfig
    from saemerge.steps.population import init_population

    variants = init_population(
        RunConfig.from_params(
            dict(
                run_uri=run_uri,
                experts=experts,
                base_uri=base_uri,
                data_uri=data_uri,
                opt_sizes=opt_sizes,
                test_sizes=test_sizes,
                opt_splits=opt_splits,
                steps=steps,
                archive_size=archive_size,
                s_min=s_min,
                s_max=s_max,
                gamma=gamma,
                measure=measure,
                include_base=include_base,
                baselines=baselines,
                seed=seed,
                merge_device=merge_device,
                eval_device=eval_device,
                eval_dtype=eval_dtype,
                eval_batch_size=eval_batch_size,
                score_cache=score_cache,
                tasks_uri=tasks_uri,
                task_code=task_code,
                m2n2_children=m2n2_children,
                m2n2_alpha=m2n2_alpha,
                search=M2N2,
            )
        )
    )
    metrics.log_metric("variants", len(variants))
    return variants
