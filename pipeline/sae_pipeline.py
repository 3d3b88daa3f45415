"""The SAE pipeline: one kfp v2 pipeline, the generation loop unrolled at compile time.

```
init_population ─► ParallelFor(variants): prune ─► Collected ─► evaluate (GPU) ─► archive_update(-1)
for t in 0..steps-1 (one nested pipeline per generation):
  schedule_step(t) ─► s_t        sample_optimisation_set(t) ─► sample
  evaluate(archive on sample) ─► pair_parents ─► ParallelFor(pairs): pair_and_merge ─► Collected
  ─► evaluate(offspring) ─► archive_update(t)
final_evaluate (GPU) ─► report
```

Images, the GPU resource name, the S3 secret and the merge parallelism are compile options
(:func:`build_pipeline`); everything else is a pipeline parameter, generated from
:class:`saemerge.config.RunConfig` (types, the paper's defaults, descriptions).

A note on loops: every value a task inside a ParallelFor needs from upstream tasks travels
in its loop item (the pair or variant dict), never as a separate task output. This keeps the
loop body independent of the surrounding DAG, and it sidesteps kfp.local (2.17) resolving
such inputs to the loop item itself.
"""

import inspect
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, List, Tuple

from kfp import dsl, kubernetes

from saemerge import __version__
from saemerge.config import PARAMS, SAE, pipeline_docstring

from saemerge.components.archive_update import archive_update
from saemerge.components.evaluate import evaluate
from saemerge.components.final_evaluate import final_evaluate
from saemerge.components.init_population import init_population
from saemerge.components.pair_and_merge import pair_and_merge
from saemerge.components.pair_parents import pair_parents
from saemerge.components.prune import prune
from saemerge.components.report import report
from saemerge.components.sample_optimisation_set import sample_optimisation_set
from saemerge.components.schedule_step import schedule_step

PIPELINE_NAME = "saemerge-sae"
DESCRIPTION = "Sparsity-Aware Evolution for merging LLM experts (arXiv 2602.08218)."
# Keys of the Kubernetes secret that hold the S3 endpoint and credentials.
S3_SECRET_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
# The IR types of run parameters (kfp reads the annotations of the pipeline's signature).
_ANNOTATIONS = {str: str, int: int, float: float, bool: bool, list: List[str], dict: dict}


def with_run_parameters(search: str, description: str) -> Callable[[Callable[[SimpleNamespace], Any]], Callable[..., Any]]:
    """A decorator: the pipeline function whose parameters are :class:`RunConfig`'s parameters of `search`.

    kfp builds the pipeline's inputs from the function's signature (types and defaults) and
    copies the docstring's ``Args:`` into their descriptions, which the Kubeflow run form
    shows; both come from the one parameter table, so they cannot drift from it. kfp calls the
    function with one argument per parameter, in signature order; `body` gets them by name.
    """
    params = [p for p in PARAMS.values() if p.takes(search)]
    signature = inspect.Signature([
        inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_ANNOTATIONS[p.type],
                          **({} if p.required else {"default": p.default}))
        for p in params
    ], return_annotation=List[dict])

    def decorate(body: Callable[[SimpleNamespace], Any]) -> Callable[..., Any]:
        def pipeline_func(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return body(SimpleNamespace(**bound.arguments))

        pipeline_func.__name__ = body.__name__
        pipeline_func.__signature__ = signature  # type: ignore[attr-defined]
        pipeline_func.__doc__ = pipeline_docstring(description, search)
        return pipeline_func

    return decorate


@dataclass(frozen=True)
class CompileOptions:
    """What is fixed when the pipeline is compiled (the rest are run parameters)."""

    steps: int = 12
    cpu_image: str = f"ghcr.io/saemerge/saemerge-cpu:{__version__}"
    gpu_image: str = f"ghcr.io/saemerge/saemerge-gpu:{__version__}"
    gpu_resource: str = "nvidia.com/gpu"
    s3_secret: str = "saemerge-s3"
    merge_parallelism: int = 4
    retries: int = 2
    # GPU pods: tolerate the usual taint of GPU nodes, and optionally pin them to labelled nodes.
    gpu_tolerations: Tuple[str, ...] = ("nvidia.com/gpu",)
    gpu_node_selector: Tuple[Tuple[str, str], ...] = ()


def build_pipeline(options: CompileOptions = CompileOptions()):
    """The pipeline function for `options` (compile it, or call it under kfp.local)."""
    if options.steps < 1:
        raise ValueError(f"steps must be >= 1, got {options.steps}")

    def cpu(func):
        return dsl.component(func, base_image=options.cpu_image, install_kfp_package=False)

    def gpu(func):
        return dsl.component(func, base_image=options.gpu_image, install_kfp_package=False)

    c_init, c_schedule, c_sample = cpu(init_population), cpu(schedule_step), cpu(sample_optimisation_set)
    c_prune, c_pair, c_merge = cpu(prune), cpu(pair_parents), cpu(pair_and_merge)
    c_update, c_report = cpu(archive_update), cpu(report)
    c_eval, c_final = gpu(evaluate), gpu(final_evaluate)

    def with_s3(task: dsl.PipelineTask) -> dsl.PipelineTask:
        return kubernetes.use_secret_as_env(task, options.s3_secret, {k: k for k in S3_SECRET_KEYS})

    def on_gpu(task: dsl.PipelineTask) -> dsl.PipelineTask:
        task.set_accelerator_type(options.gpu_resource).set_accelerator_limit(1)
        task.set_retry(num_retries=options.retries, backoff_duration="60s", backoff_factor=2.0)
        kubernetes.add_pod_label(task, "saemerge.io/accelerator", "gpu")
        for key in options.gpu_tolerations:
            kubernetes.add_toleration(task, key=key, operator="Exists", effect="NoSchedule")
        for key, value in options.gpu_node_selector:
            kubernetes.add_node_selector(task, key, value)
        return with_s3(task)

    def retried(task: dsl.PipelineTask) -> dsl.PipelineTask:
        task.set_retry(num_retries=options.retries, backoff_duration="30s", backoff_factor=2.0)
        return with_s3(task)

    @dsl.pipeline(name="sae-generation", description="One SAE generation: rescore, pair, merge, evaluate, compete.")
    def sae_generation(
        run_uri: str, generation: int, archive: List[dict], base_uri: str, data_uri: str, opt_sizes: dict,
        steps: int, s_min: float, s_max: float, t0: int, t_mult: int, reverse: bool, seed: int,
        archive_size: int, competition: str, scoring: str, beta: float, gamma: float, attraction: str,
        measure: str, granularity: str, merge_device: str, eval_device: str, eval_dtype: str, eval_batch_size: int,
    ) -> List[dict]:
        s_t = c_schedule(generation=generation, steps=steps, s_min=s_min, s_max=s_max, t0=t0, t_mult=t_mult, reverse=reverse)
        s_t.set_display_name("schedule step").set_caching_options(True)
        sample = with_s3(c_sample(run_uri=run_uri, generation=generation, data_uri=data_uri, opt_sizes=opt_sizes, seed=seed))
        sample.set_display_name("sample optimisation set")
        rescored = on_gpu(c_eval(
            run_uri=run_uri, generation=generation, stage="archive", candidates=archive, sample_uri=sample.output,
            gamma=gamma, device=eval_device, dtype=eval_dtype, batch_size=eval_batch_size,
        )).set_display_name("evaluate archive")
        pairs = with_s3(c_pair(run_uri=run_uri, generation=generation, archive=rescored.outputs["Output"], s_t=s_t.output, seed=seed))
        pairs.set_display_name("pair parents")
        with dsl.ParallelFor(items=pairs.output, parallelism=options.merge_parallelism) as pair:
            child = retried(c_merge(
                run_uri=run_uri, pair=pair, base_uri=base_uri, scoring=scoring, beta=beta, attraction=attraction,
                measure=measure, granularity=granularity, device=merge_device,
            )).set_display_name("prune + merge")
        scored = on_gpu(c_eval(
            run_uri=run_uri, generation=generation, stage="offspring", candidates=dsl.Collected(child.outputs["Output"]),
            sample_uri=sample.output, gamma=gamma, device=eval_device, dtype=eval_dtype, batch_size=eval_batch_size,
        )).set_display_name("evaluate offspring")
        update = with_s3(c_update(
            run_uri=run_uri, generation=generation, s_t=s_t.output, archive=rescored.outputs["Output"],
            offspring=scored.outputs["Output"], archive_size=archive_size, competition=competition,
        )).set_display_name("archive update")
        return update.outputs["Output"]

    @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
    @with_run_parameters(SAE, DESCRIPTION)
    def sae_pipeline(p: SimpleNamespace) -> List[dict]:
        run_uri, experts, base_uri, data_uri, opt_sizes, test_sizes = (
            p.run_uri, p.experts, p.base_uri, p.data_uri, p.opt_sizes, p.test_sizes)
        archive_size, s_min, s_max, t0, t_mult, reverse = p.archive_size, p.s_min, p.s_max, p.t0, p.t_mult, p.reverse
        beta, gamma, scoring, attraction, competition = p.beta, p.gamma, p.scoring, p.attraction, p.competition
        measure, granularity, include_base, baselines, seed = p.measure, p.granularity, p.include_base, p.baselines, p.seed
        merge_device, eval_device, eval_dtype, eval_batch_size = p.merge_device, p.eval_device, p.eval_dtype, p.eval_batch_size
        init = with_s3(c_init(
            run_uri=run_uri, experts=experts, base_uri=base_uri, data_uri=data_uri, opt_sizes=opt_sizes,
            test_sizes=test_sizes, steps=options.steps, archive_size=archive_size, s_min=s_min, s_max=s_max, t0=t0,
            t_mult=t_mult, reverse=reverse, beta=beta, gamma=gamma, scoring=scoring, attraction=attraction,
            competition=competition, measure=measure, granularity=granularity, include_base=include_base,
            baselines=baselines, seed=seed, merge_device=merge_device, eval_device=eval_device, eval_dtype=eval_dtype,
            eval_batch_size=eval_batch_size,
        )).set_display_name("init population")
        with dsl.ParallelFor(items=init.outputs["Output"], parallelism=options.merge_parallelism) as variant:
            pruned = retried(c_prune(
                run_uri=run_uri, variant=variant, base_uri=base_uri, measure=measure, device=merge_device,
            ))
            pruned.set_display_name("prune variant")
        sample0 = with_s3(c_sample(run_uri=run_uri, generation=0, data_uri=data_uri, opt_sizes=opt_sizes, seed=seed))
        sample0.set_display_name("sample optimisation set")
        scored0 = on_gpu(c_eval(
            run_uri=run_uri, generation=-1, stage="init", candidates=dsl.Collected(pruned.outputs["Output"]),
            sample_uri=sample0.output, gamma=gamma, device=eval_device, dtype=eval_dtype, batch_size=eval_batch_size,
        )).set_display_name("evaluate initial population")
        archive = with_s3(c_update(
            run_uri=run_uri, generation=-1, s_t=0.0, archive=[], offspring=scored0.outputs["Output"],
            archive_size=archive_size, competition=competition,
        )).set_display_name("initial archive").outputs["Output"]
        for t in range(options.steps):
            gen = sae_generation(
                run_uri=run_uri, generation=t, archive=archive, base_uri=base_uri, data_uri=data_uri,
                opt_sizes=opt_sizes, steps=options.steps, s_min=s_min, s_max=s_max, t0=t0, t_mult=t_mult,
                reverse=reverse, seed=seed, archive_size=archive_size, competition=competition, scoring=scoring,
                beta=beta, gamma=gamma, attraction=attraction, measure=measure, granularity=granularity,
                merge_device=merge_device, eval_device=eval_device, eval_dtype=eval_dtype,
                eval_batch_size=eval_batch_size,
            ).set_display_name(f"generation {t:02d}")
            archive = gen.output
        final = on_gpu(c_final(
            run_uri=run_uri, archive=archive, experts=experts, base_uri=base_uri, data_uri=data_uri,
            test_sizes=test_sizes, baselines=baselines, seed=seed, gamma=gamma, device=eval_device,
            dtype=eval_dtype, batch_size=eval_batch_size,
        )).set_display_name("final evaluate")
        rep = with_s3(c_report(run_uri=run_uri, results=final.outputs["Output"])).set_display_name("report")
        return final.outputs["Output"]

    return sae_pipeline
