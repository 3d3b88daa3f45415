"""The compiled PSO pipeline: golden YAML, 5 unrolled steps, moves in a loop, GPU evaluation, the S3 secret."""

import re

import pytest
import yaml

from saemerge.config import PARAMS
from saemerge.pipeline.common import CompileOptions
from saemerge.pipeline.compile import compile_pipeline
from saemerge.pipeline.searches import SEARCHES
from tests.support.s3secret import assert_s3_secret_mounted

GOLDEN = SEARCHES["pso"].golden
GPU_STEPS = ("evaluate", "final-evaluate")
NO_S3_STEPS: tuple[str, ...] = ()  # pso-candidates reads and writes handoff files
RETRIED = ("pso-particle", "pso-move")  # model-making steps (a pod may be lost)


def _strip_version(text: str) -> str:
    """Without the kfp version and the code stamp (which follows every change of the step code)."""
    from saemerge.pipeline.compile import mask_code_stamp

    return mask_code_stamp(re.sub(r"(?m)^sdkVersion: .*$", "", text))


def _base(executor: str) -> str:
    return re.sub(r"(-\d+)+$", "", executor.removeprefix("exec-"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled") / "pso_pipeline.yaml"
    stats = compile_pipeline(out, CompileOptions(search="pso"))
    spec, platform = yaml.safe_load_all(out.read_text())
    return out, stats, spec, platform


def _tasks(spec, dag=None):
    """Every task of the pipeline, nested DAGs included, as (task name, component name, task)."""
    dag = spec["root"]["dag"] if dag is None else dag
    for name, task in dag.get("tasks", {}).items():
        comp = task["componentRef"]["name"]
        yield name, comp, task
        if "dag" in spec["components"][comp]:
            yield from _tasks(spec, spec["components"][comp]["dag"])


def test_golden_yaml_matches(compiled):
    out, *_ = compiled
    assert GOLDEN.exists(), "run `saemerge compile --search pso --out pipeline/pso_pipeline.yaml`"
    assert _strip_version(out.read_text()) == _strip_version(GOLDEN.read_text()), (
        "the compiled PSO pipeline differs from the golden copy; if the change is intended, run "
        "`saemerge compile --search pso --out pipeline/pso_pipeline.yaml`"
    )


def test_five_steps_unrolled_and_small(compiled):
    _, stats, spec, _ = compiled
    steps = [t for t in spec["root"]["dag"]["tasks"].values() if t["componentRef"]["name"].startswith("comp-pso-step")]
    assert len(steps) == 5 == stats["generations"]
    assert sorted(t["taskInfo"]["name"] for t in steps) == [f"step {k}" for k in range(1, 6)]
    step_k = {int(t["inputs"]["parameters"]["step"]["runtimeValue"]["constant"]) for t in steps}
    assert step_k == {1, 2, 3, 4, 5}
    assert stats["bytes"] < 500_000


def test_pipeline_parameters_are_psos_rows_of_the_table(compiled):
    _, _, spec, _ = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {name for name, p in PARAMS.items() if p.takes("pso")}
    assert params["pso_w"]["defaultValue"] == 0.2 and "PSO inertia" in params["pso_w"]["description"]


def test_moves_run_in_a_loop_and_model_steps_are_retried(compiled):
    _, _, spec, _ = compiled
    loops = [comp for _, comp, _ in _tasks(spec) if comp.startswith("comp-for-loop")]
    inside = {
        c
        for loop in set(loops)
        for c in (t["componentRef"]["name"] for t in spec["components"][loop]["dag"]["tasks"].values())
    }
    assert {"comp-pso-particle", "comp-pso-move"} <= inside
    for name, comp, task in _tasks(spec):
        if _base(comp.removeprefix("comp-")) in RETRIED:
            assert task["retryPolicy"]["maxRetryCount"] == 2, name


def test_evaluate_runs_on_gpu_and_the_s3_secret_reaches_every_step_that_needs_it(compiled):
    _, _, spec, platform = compiled
    opts = CompileOptions(search="pso")
    platform_execs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    seen = set()
    for name, executor in spec["deploymentSpec"]["executors"].items():
        base = _base(name)
        seen.add(base)
        container = executor["container"]
        if base in GPU_STEPS:
            assert (
                container["image"] == opts.gpu_image and container["resources"]["accelerator"]["resourceCount"] == "1"
            )
        else:
            assert (
                container["image"] == opts.cpu_image
                and container["resources"]["accelerator"]["resourceType"] == "ephemeral-storage"
            )  # no GPU: its disk
        if base in NO_S3_STEPS:
            assert not {"secretAsEnv", "secretAsVolume"} & set(platform_execs.get(name, {}))
        else:
            assert_s3_secret_mounted(platform_execs[name])
    assert {
        "pso-init",
        "pso-particle",
        "pso-move",
        "pso-candidates",
        "pso-update",
        "evaluate",
        "final-evaluate",
        "report",
    } == seen


def test_steps_are_sized_by_kind(compiled):
    """Moves and particles are merge-sized (they stream whole checkpoints), evaluation evaluate-sized, the rest small."""
    _, _, spec, _ = compiled
    opts = CompileOptions(search="pso")
    for name, executor in spec["deploymentSpec"]["executors"].items():
        base = _base(name)
        kind = "evaluate" if base in GPU_STEPS else "merge" if base in RETRIED else "small"
        want, res = opts.step_resources(kind), executor["container"]["resources"]
        assert res["resourceCpuRequest"] == want.cpu and res["resourceMemoryRequest"] == want.memory, name


def test_steps_is_a_compile_option(tmp_path):
    stats = compile_pipeline(tmp_path / "p.yaml", CompileOptions(search="pso", steps=2))
    assert stats["generations"] == 2 and stats["search"] == "pso"
