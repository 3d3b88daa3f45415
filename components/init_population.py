from typing import List

from kfp.dsl import Metrics, Output


def init_population(
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
    t0: int,
    t_mult: int,
    reverse: bool,
    beta: float,
    gamma: float,
    scoring: str,
    attraction: str,
    competition: str,
    measure: str,
    granularity: str,
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
    metrics: Output[Metrics],
) -> List[dict]:
    """Validate every run parameter, write run.json, list the initial sparse variants (SAE-SPEC §6.1).

    Each expert (and the base when `include_base`) is expanded at sparsities
    {0, s_min, (s_min+s_max)/2, s_max}.

    Returns:
        One dict per variant: {"source": URI, "name": str, "sparsity": float}.
    """
    from saemerge.config import RunConfig
    from saemerge.steps.population import init_population as init

    config = RunConfig.from_params(
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
            t0=t0,
            t_mult=t_mult,
            reverse=reverse,
            beta=beta,
            gamma=gamma,
            scoring=scoring,
            attraction=attraction,
            competition=competition,
            measure=measure,
            granularity=granularity,
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
        )
    )
    variants = init(config)
    metrics.log_metric("variants", len(variants))
    return variants
