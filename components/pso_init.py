from typing import List

from kfp.dsl import Metrics, Output


def pso_init(
    run_uri: str,
    experts: List[str],
    base_uri: str,
    data_uri: str,
    opt_sizes: dict,
    test_sizes: dict,
    opt_splits: str,
    steps: int,
    baselines: List[str],
    seed: int,
    merge_device: str,
    eval_device: str,
    eval_dtype: str,
    eval_batch_size: int,
    score_cache: str,
    tasks_uri: str,
    task_code: bool,
    pso_w: float,
    pso_c1: float,
    pso_c2: float,
    pso_drop_p: float,
    pso_dare_copies: int,
    pso_include_base: bool,
    metrics: Output[Metrics],
) -> List[dict]:
    """Validate every run parameter, write run.json, list the swarm's particles (SAE-SPEC §7).

    Particles: the base (when `pso_include_base`), each expert, and `pso_dare_copies`
    DARE-sparsified copies of each expert (drop rate `pso_drop_p`, each its own seed).

    Returns:
        One dict per particle: {"particle", "index", "source", "drop_p", "seed"}.
    """
    from saemerge.config import RunConfig
    from saemerge.steps.pso import start_run

    config = RunConfig.from_params(
        dict(
            search="pso",
            run_uri=run_uri,
            experts=experts,
            base_uri=base_uri,
            data_uri=data_uri,
            opt_sizes=opt_sizes,
            test_sizes=test_sizes,
            opt_splits=opt_splits,
            steps=steps,
            baselines=baselines,
            seed=seed,
            merge_device=merge_device,
            eval_device=eval_device,
            eval_dtype=eval_dtype,
            eval_batch_size=eval_batch_size,
            score_cache=score_cache,
            tasks_uri=tasks_uri,
            task_code=task_code,
            pso_w=pso_w,
            pso_c1=pso_c1,
            pso_c2=pso_c2,
            pso_drop_p=pso_drop_p,
            pso_dare_copies=pso_dare_copies,
            pso_include_base=pso_include_base,
        )
    )
    particles = start_run(config)
    metrics.log_metric("particles", len(particles))
    return particles
