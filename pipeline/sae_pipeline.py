"""The SAE pipeline: one kfp v2 pipeline, the generation loop unrolled at compile time.

```
init_population ─► ParallelFor(variants): prune ─► Collected ─► evaluate (GPU) ─► archive_update(-1)
for t in 0..steps-1 (one nested pipeline per generation):
  schedule_step(t) ─► s_t        sample_optimisation_set(t) ─► sample
  evaluate(archive on sample) ─► pair_parents ─► ParallelFor(pairs): pair_and_merge ─► Collected
  ─► evaluate(offspring) ─► archive_update(t)
final_evaluate (GPU) ─► report
```

The pipeline's outputs: ``results`` (the test-set rows) and ``best_model``, the search's best
model as a Kubeflow Model artifact (a pointer to its checkpoint under ``RUN/models/``).

Images, the GPU resource name, the S3 secret, the merge parallelism, each kind of step's
resources and cache volume, and whether merges run on GPUs are compile options
(:func:`build_pipeline`, :mod:`saemerge.pipeline.resources`); everything else is a pipeline
parameter, generated from :class:`saemerge.config.RunConfig` (types, the paper's defaults,
descriptions).

Records (archives, scored candidates, pairs, children) travel between steps as the URIs of
the Parquet files the producing step wrote (:mod:`saemerge.steps.handoff`), not as parameter
values: the KFP backend copies every parameter value into the Argo Workflow object several
times per task, and that object must fit in etcd.

A note on loops: every value a task inside a ParallelFor needs from upstream tasks travels
in its loop item (a pair's handoff URI, or a variant dict), never as a separate task output.
This keeps the loop body independent of the surrounding DAG, and it sidesteps kfp.local
(2.17) resolving such inputs to the loop item itself.
"""

from types import SimpleNamespace
from typing import List

from kfp import dsl

from saemerge.components.archive_update import archive_update
from saemerge.components.evaluate import evaluate
from saemerge.components.init_population import init_population
from saemerge.components.pair_and_merge import pair_and_merge
from saemerge.components.pair_parents import pair_parents
from saemerge.components.sample_optimisation_set import sample_optimisation_set
from saemerge.components.schedule_step import schedule_step
from saemerge.config import SAE
from saemerge.pipeline.common import S3_SECRET_KEYS, CompileOptions, SearchOutputs, Tasks, with_run_parameters

__all__ = ["PIPELINE_NAME", "S3_SECRET_KEYS", "CompileOptions", "build_pipeline"]

PIPELINE_NAME = "saemerge-sae"
DESCRIPTION = "Sparsity-Aware Evolution for merging LLM experts (arXiv 2602.08218)."


def build_pipeline(options: CompileOptions = CompileOptions()):
    """The SAE pipeline function for `options` (compile it, or call it under kfp.local)."""
    tasks = Tasks(options)
    cpu, gpu, with_s3, on_gpu, retried = tasks.cpu, tasks.gpu, tasks.with_s3, tasks.on_gpu, tasks.retried
    c_init, c_schedule, c_sample = cpu(init_population), cpu(schedule_step), cpu(sample_optimisation_set)
    c_pair, c_merge, c_update, c_eval = cpu(pair_parents), cpu(pair_and_merge), cpu(archive_update), gpu(evaluate)

    @dsl.pipeline(name="sae-generation", description="One SAE generation: rescore, pair, merge, evaluate, compete.")
    def sae_generation(
        run_uri: str,
        generation: int,
        archive: List[str],
        base_uri: str,
        data_uri: str,
        opt_sizes: dict,
        steps: int,
        s_min: float,
        s_max: float,
        t0: int,
        t_mult: int,
        reverse: bool,
        seed: int,
        archive_size: int,
        competition: str,
        scoring: str,
        beta: float,
        gamma: float,
        attraction: str,
        measure: str,
        granularity: str,
        merge_device: str,
        eval_device: str,
        eval_dtype: str,
        eval_batch_size: int,
    ) -> List[str]:
        s_t = tasks.small(
            c_schedule(
                generation=generation, steps=steps, s_min=s_min, s_max=s_max, t0=t0, t_mult=t_mult, reverse=reverse
            )
        )
        s_t.set_display_name("schedule step").set_caching_options(True)
        sample = with_s3(
            c_sample(run_uri=run_uri, generation=generation, data_uri=data_uri, opt_sizes=opt_sizes, seed=seed)
        )
        sample.set_display_name("sample optimisation set")
        rescored = on_gpu(
            c_eval(
                run_uri=run_uri,
                generation=generation,
                stage="archive",
                candidates=archive,
                sample_uri=sample.output,
                gamma=gamma,
                device=eval_device,
                dtype=eval_dtype,
                batch_size=eval_batch_size,
            )
        ).set_display_name("evaluate archive")
        pairs = with_s3(
            c_pair(
                run_uri=run_uri, generation=generation, archive=rescored.outputs["Output"], s_t=s_t.output, seed=seed
            )
        )
        pairs.set_display_name("pair parents")
        with dsl.ParallelFor(items=pairs.output, parallelism=options.merge_parallelism) as pair:
            child = retried(
                c_merge(
                    run_uri=run_uri,
                    pair=pair,
                    base_uri=base_uri,
                    scoring=scoring,
                    beta=beta,
                    attraction=attraction,
                    measure=measure,
                    granularity=granularity,
                    device=merge_device,
                )
            ).set_display_name("prune + merge")
        scored = on_gpu(
            c_eval(
                run_uri=run_uri,
                generation=generation,
                stage="offspring",
                candidates=dsl.Collected(child.outputs["Output"]),
                sample_uri=sample.output,
                gamma=gamma,
                device=eval_device,
                dtype=eval_dtype,
                batch_size=eval_batch_size,
            )
        ).set_display_name("evaluate offspring")
        update = with_s3(
            c_update(
                run_uri=run_uri,
                generation=generation,
                s_t=s_t.output,
                archive=rescored.outputs["Output"],
                offspring=scored.outputs["Output"],
                archive_size=archive_size,
                competition=competition,
            )
        ).set_display_name("archive update")
        return update.outputs["Output"]

    @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
    @with_run_parameters(SAE, DESCRIPTION, returns=SearchOutputs)
    def sae_pipeline(p: SimpleNamespace) -> SearchOutputs:
        run_uri, experts, base_uri, data_uri, opt_sizes, test_sizes = (
            p.run_uri,
            p.experts,
            p.base_uri,
            p.data_uri,
            p.opt_sizes,
            p.test_sizes,
        )
        archive_size, s_min, s_max, t0, t_mult, reverse = p.archive_size, p.s_min, p.s_max, p.t0, p.t_mult, p.reverse
        beta, gamma, scoring, attraction, competition = p.beta, p.gamma, p.scoring, p.attraction, p.competition
        measure, granularity, include_base, baselines, seed = (
            p.measure,
            p.granularity,
            p.include_base,
            p.baselines,
            p.seed,
        )
        merge_device, eval_device, eval_dtype, eval_batch_size = (
            p.merge_device,
            p.eval_device,
            p.eval_dtype,
            p.eval_batch_size,
        )
        init = with_s3(
            c_init(
                run_uri=run_uri,
                experts=experts,
                base_uri=base_uri,
                data_uri=data_uri,
                opt_sizes=opt_sizes,
                test_sizes=test_sizes,
                opt_splits=p.opt_splits,
                steps=options.steps,
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
                score_cache=p.score_cache,
            )
        ).set_display_name("init population")
        archive = tasks.initial_archive(p, init, competition=competition)
        for t in range(options.steps):
            gen = sae_generation(
                run_uri=run_uri,
                generation=t,
                archive=archive,
                base_uri=base_uri,
                data_uri=data_uri,
                opt_sizes=opt_sizes,
                steps=options.steps,
                s_min=s_min,
                s_max=s_max,
                t0=t0,
                t_mult=t_mult,
                reverse=reverse,
                seed=seed,
                archive_size=archive_size,
                competition=competition,
                scoring=scoring,
                beta=beta,
                gamma=gamma,
                attraction=attraction,
                measure=measure,
                granularity=granularity,
                merge_device=merge_device,
                eval_device=eval_device,
                eval_dtype=eval_dtype,
                eval_batch_size=eval_batch_size,
            ).set_display_name(f"generation {t:02d}")
            archive = gen.output
        return tasks.final_and_report(p, archive, gamma=gamma)

    return sae_pipeline
