"""The SAE pipeline: one kfp v2 pipeline, the generation loop unrolled at compile time.

```
init_population ─► ParallelFor(variants): prune ─► Collected ─► evaluate(sample 0) (GPU) ─► archive_update(-1)
for t in 0..steps-1 (one nested pipeline per generation: run_uri, t, the archive):
  evaluate(archive on sample t) (GPU) ─► schedule_step(t): s_t and the pairs
  ─► ParallelFor(pairs): pair_and_merge ─► Collected ─► evaluate(offspring) (GPU) ─► archive_update(t)
final_evaluate (GPU) ─► report
```

A generation is four steps and the merges. The optimisation set is drawn by the evaluate
step that first scores on it (deterministic, kept in RUN/samples/gen-XX/), and the pairs by
the schedule step, which runs after the archive is scored on the sample; the steps after
init take only the run, the generation and handoff URIs, and read the run's settings from
its run.json (:mod:`saemerge.steps.settings`). Each task costs the Argo Workflow a few KB
whatever it does (:mod:`saemerge.pipeline.workflow_size`), so the fewer the better.

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
from saemerge.components.schedule_step import schedule_step
from saemerge.config import SAE, SEARCH_TABLE
from saemerge.pipeline.common import S3_SECRET_KEYS, CompileOptions, SearchOutputs, Tasks, with_run_parameters

__all__ = ["PIPELINE_NAME", "S3_SECRET_KEYS", "CompileOptions", "build_pipeline"]

PIPELINE_NAME = SEARCH_TABLE["sae"].pipeline_name
DESCRIPTION = "Sparsity-Aware Evolution for merging LLM experts (arXiv 2602.08218)."


def build_pipeline(options: CompileOptions = CompileOptions()):
    """The SAE pipeline function for `options` (compile it, or call it under kfp.local)."""
    tasks = Tasks(options)
    cpu, gpu, with_s3, on_gpu, retried = tasks.cpu, tasks.gpu, tasks.with_s3, tasks.on_gpu, tasks.retried
    c_init, c_schedule, c_merge = cpu(init_population), cpu(schedule_step), cpu(pair_and_merge)
    c_update, c_eval = cpu(archive_update), gpu(evaluate)

    @dsl.pipeline(name="sae-generation", description="One SAE generation: rescore, pair, merge, evaluate, compete.")
    def sae_generation(run_uri: str, generation: int, archive: List[str]) -> List[str]:
        rescored = on_gpu(
            c_eval(run_uri=run_uri, generation=generation, stage="archive", candidates=archive, sample=generation)
        ).set_display_name("evaluate archive")
        schedule = with_s3(c_schedule(run_uri=run_uri, generation=generation, archive=rescored.outputs["Output"]))
        schedule.set_display_name("schedule step + pairs")
        with dsl.ParallelFor(items=schedule.output, parallelism=options.merge_parallelism) as pair:
            child = retried(c_merge(run_uri=run_uri, pair=pair)).set_display_name("prune + merge")
        scored = on_gpu(
            c_eval(
                run_uri=run_uri,
                generation=generation,
                stage="offspring",
                candidates=dsl.Collected(child.outputs["Output"]),
                sample=generation,
            )
        ).set_display_name("evaluate offspring")
        update = with_s3(
            c_update(
                run_uri=run_uri,
                generation=generation,
                archive=rescored.outputs["Output"],
                offspring=scored.outputs["Output"],
            )
        ).set_display_name("archive update")
        return update.outputs["Output"]

    @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
    @with_run_parameters(SAE, DESCRIPTION, returns=SearchOutputs)
    def sae_pipeline(p: SimpleNamespace) -> SearchOutputs:
        init = with_s3(c_init(**tasks.run_inputs(c_init, p, steps=options.steps))).set_display_name("init population")
        archive = tasks.initial_archive(p, init)
        for t in range(options.steps):
            gen = sae_generation(run_uri=p.run_uri, generation=t, archive=archive)
            archive = gen.set_display_name(f"generation {t:02d}").output
        return tasks.final_and_report(p, archive, gamma=p.gamma)

    return sae_pipeline
