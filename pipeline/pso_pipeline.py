"""The PSO-Merging pipeline (SAE-SPEC §7): SAE's comparator, its update steps unrolled at compile time.

```
pso_init ─► ParallelFor(particles): pso_particle ─► Collected
pso_candidates ─► evaluate(sample 0) (GPU) ─► pso_update(0)      [init/]
for k in 1..steps (one nested pipeline per step: run_uri, k, k - 1, the swarm):
  ParallelFor(swarm): pso_move ─► Collected
  pso_candidates (new positions + personal bests + global best) ─► evaluate(sample k) (GPU) ─► pso_update(k)  [gen-(k-1)/]
final_evaluate (GPU) on [gbest] ─► report
```

The shared components (evaluate, which draws the step's sample, final evaluate, report) are
SAE's; the steps after pso_init read the run's settings from run.json. Fitness is the
macro accuracy (γ = 0). The outputs, as every search's: ``results`` (the test-set rows) and
``best_model`` (the global best as a Kubeflow Model artifact). The swarm travels as ``pso_update``'s output: a list with one
state per particle (the URI of its handoff file), which is also the next step's loop items, so a
move needs nothing but its item
and the run (see the note on loops in :mod:`saemerge.pipeline.sae_pipeline`).
"""

from types import SimpleNamespace
from typing import List, NamedTuple

from kfp import dsl

from saemerge.components.evaluate import evaluate
from saemerge.components.pso_candidates import pso_candidates
from saemerge.components.pso_init import pso_init
from saemerge.components.pso_move import pso_move
from saemerge.components.pso_particle import pso_particle
from saemerge.components.pso_update import pso_update
from saemerge.config import PSO, SEARCH_TABLE
from saemerge.pipeline.common import CompileOptions, SearchOutputs, Tasks, with_run_parameters

__all__ = ["PIPELINE_NAME", "build_pipeline"]

PIPELINE_NAME = SEARCH_TABLE["pso"].pipeline_name
DESCRIPTION = "PSO-Merging of LLM experts (arXiv 2508.19839), SAE's comparator."
GAMMA = 0.0  # PSO's fitness is the macro accuracy on the optimisation set (SAE-SPEC §7)
PsoState = NamedTuple("PsoState", [("swarm", List[str]), ("gbest", List[str])])  # noqa: UP014


def build_pipeline(options: CompileOptions = CompileOptions(search=PSO)):
    """The PSO pipeline function for `options` (compile it, or call it under kfp.local)."""
    tasks = Tasks(options)
    cpu, gpu, with_s3, on_gpu, retried = tasks.cpu, tasks.gpu, tasks.with_s3, tasks.on_gpu, tasks.retried
    c_init, c_particle, c_move = cpu(pso_init), cpu(pso_particle), cpu(pso_move)
    c_candidates, c_update, c_eval = cpu(pso_candidates), cpu(pso_update), gpu(evaluate)

    @dsl.pipeline(name="pso-step", description="One PSO step: move every particle, evaluate, update the bests.")
    def pso_step(run_uri: str, step: int, generation: int, swarm: List[str]) -> PsoState:
        with dsl.ParallelFor(items=swarm, parallelism=options.merge_parallelism) as particle:
            moved = retried(c_move(run_uri=run_uri, particle=particle, step=step)).set_display_name("move particle")
        cands = with_s3(
            c_candidates(run_uri=run_uri, step=step, moved=dsl.Collected(moved.outputs["Output"]), swarm=swarm)
        )
        cands.set_display_name("positions + bests")
        scored = on_gpu(
            c_eval(run_uri=run_uri, generation=generation, stage="swarm", candidates=cands.output, sample=step)
        ).set_display_name("evaluate swarm")
        update = with_s3(
            c_update(
                run_uri=run_uri,
                step=step,
                swarm=swarm,
                moved=dsl.Collected(moved.outputs["Output"]),
                scored=scored.outputs["Output"],
            )
        ).set_display_name("update bests")
        return PsoState(update.outputs["swarm"], update.outputs["gbest"])

    @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
    @with_run_parameters(PSO, DESCRIPTION, returns=SearchOutputs)
    def pso_pipeline(p: SimpleNamespace) -> SearchOutputs:
        init = with_s3(c_init(**tasks.run_inputs(c_init, p, steps=options.steps))).set_display_name("init swarm")
        with dsl.ParallelFor(items=init.outputs["Output"], parallelism=options.merge_parallelism) as spec:
            made = retried(c_particle(run_uri=p.run_uri, particle=spec)).set_display_name("make particle")
        cands0 = with_s3(c_candidates(run_uri=p.run_uri, step=0, moved=dsl.Collected(made.outputs["Output"]), swarm=[]))
        cands0.set_display_name("initial positions")
        scored0 = on_gpu(
            c_eval(run_uri=p.run_uri, generation=-1, stage="init", candidates=cands0.output, sample=0)
        ).set_display_name("evaluate initial swarm")
        state = with_s3(
            c_update(
                run_uri=p.run_uri,
                step=0,
                swarm=[],
                moved=dsl.Collected(made.outputs["Output"]),
                scored=scored0.outputs["Output"],
            )
        ).set_display_name("initial bests")
        swarm, gbest = state.outputs["swarm"], state.outputs["gbest"]
        for k in range(1, options.steps + 1):
            step = pso_step(run_uri=p.run_uri, step=k, generation=k - 1, swarm=swarm).set_display_name(f"step {k}")
            swarm, gbest = step.outputs["swarm"], step.outputs["gbest"]
        return tasks.final_and_report(p, gbest, gamma=GAMMA)

    return pso_pipeline
