"""The M2N2 pipeline (SAE-SPEC §7, M2N2): SAE's comparator, the generation loop unrolled at compile time.

```
m2n2_init ─► ParallelFor(variants): prune ─► Collected ─► evaluate (GPU) ─► archive_update(-1)
                                        (SAE's initial archive, built by SAE's own components)
for t in 0..steps-1 (one nested pipeline per generation: run_uri, t, the archive):
  evaluate(archive on sample t, drawn there) ─► m2n2_select (matings)
  ─► ParallelFor(children): m2n2_crossover ─► Collected ─► evaluate(children) ─► m2n2_update(t)
final_evaluate (GPU) ─► report
```

The pipeline's outputs, as every search's: ``results`` (the test-set rows) and ``best_model``
(a Kubeflow Model artifact pointing at the best archive member's checkpoint).

Evaluation (which draws the generation's sample), the final evaluation and the report are the
shared components, so
M2N2 and SAE are scored by the same evaluator on the same samples (the per-example cache
makes re-scoring the archive cheap). Compile options and parameters work as in
:mod:`saemerge.pipeline.sae_pipeline`; every value a crossover needs from upstream travels in
its loop item (the URI of the mating order's handoff file).
"""

from types import SimpleNamespace
from typing import List

from kfp import dsl

from saemerge.components.evaluate import evaluate
from saemerge.components.m2n2_crossover import m2n2_crossover
from saemerge.components.m2n2_init import m2n2_init
from saemerge.components.m2n2_select import m2n2_select
from saemerge.components.m2n2_update import m2n2_update
from saemerge.config import M2N2, SEARCH_TABLE
from saemerge.pipeline.common import CompileOptions, SearchOutputs, Tasks, with_run_parameters

PIPELINE_NAME = SEARCH_TABLE["m2n2"].pipeline_name
DESCRIPTION = "M2N2 (competition and attraction, Abrantes et al. 2025): SAE's comparator, from SAE's initial archive."


def build_pipeline(options: CompileOptions = CompileOptions(search=M2N2)):
    """The M2N2 pipeline function for `options` (compile it, or call it under kfp.local)."""
    tasks = Tasks(options)
    cpu, gpu, with_s3, on_gpu, retried = tasks.cpu, tasks.gpu, tasks.with_s3, tasks.on_gpu, tasks.retried
    c_init, c_eval = cpu(m2n2_init), gpu(evaluate)
    c_select, c_cross, c_update = cpu(m2n2_select), cpu(m2n2_crossover), cpu(m2n2_update)

    @dsl.pipeline(
        name="m2n2-generation", description="One M2N2 generation: rescore, mate, cross over, evaluate, compete."
    )
    def m2n2_generation(run_uri: str, generation: int, archive: List[str]) -> List[str]:
        rescored = on_gpu(
            c_eval(run_uri=run_uri, generation=generation, stage="archive", candidates=archive, sample=generation)
        ).set_display_name("evaluate archive")
        matings = with_s3(c_select(run_uri=run_uri, generation=generation, archive=rescored.outputs["Output"]))
        matings.set_display_name("select parents")
        with dsl.ParallelFor(items=matings.output, parallelism=options.merge_parallelism) as order:
            child = retried(c_cross(run_uri=run_uri, order=order)).set_display_name("crossover")
        scored = on_gpu(
            c_eval(
                run_uri=run_uri,
                generation=generation,
                stage="offspring",
                candidates=dsl.Collected(child.outputs["Output"]),
                sample=generation,
            )
        ).set_display_name("evaluate children")
        update = with_s3(
            c_update(
                run_uri=run_uri,
                generation=generation,
                archive=rescored.outputs["Output"],
                children=scored.outputs["Output"],
            )
        ).set_display_name("archive update")
        return update.outputs["Output"]

    @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
    @with_run_parameters(M2N2, DESCRIPTION, returns=SearchOutputs)
    def m2n2_pipeline(p: SimpleNamespace) -> SearchOutputs:
        init = with_s3(c_init(**tasks.run_inputs(c_init, p, steps=options.steps))).set_display_name("init population")
        # SAE's initial archive, with SAE's components (SAE-SPEC §6.1): every search starts from the same models.
        archive = tasks.initial_archive(p, init)
        for t in range(options.steps):
            gen = m2n2_generation(run_uri=p.run_uri, generation=t, archive=archive)
            archive = gen.set_display_name(f"generation {t:02d}").output
        return tasks.final_and_report(p, archive, gamma=p.gamma)

    return m2n2_pipeline
