"""Every task's compiled retry strategy: each container task of every search is retried, and Argo
keeps retrying it long enough for every attempt to run its expected time at the compiled model
size (Argo stops once the first attempt's start plus backoff.maxDuration has passed)."""

import pytest
import yaml

from saemerge.pipeline.common import CompileOptions
from saemerge.pipeline.compile import compile_pipeline
from saemerge.pipeline.retries import RETRY_KINDS, expected_run_s, retry_plan

# Each step's retry kind, by its component (every component of every search must be named here).
KINDS = {
    "evaluate": "evaluate",
    "final-evaluate": "final",
    "prune": "merge",
    "pair-and-merge": "merge",
    "m2n2-crossover": "merge",
    "pso-move": "merge",
    "pso-particle": "merge",
}
SMALL = {
    "init-population",
    "archive-update",
    "schedule-step",
    "report",
    "m2n2-init",
    "m2n2-select",
    "m2n2-update",
    "pso-init",
    "pso-candidates",
    "pso-update",
}


def _container_tasks(spec: dict):
    def walk(dag: dict):
        for name, task in dag.get("tasks", {}).items():
            comp = spec["components"][task["componentRef"]["name"]]
            if "dag" in comp:
                yield from walk(comp["dag"])
            else:
                yield name, comp["executorLabel"].removeprefix("exec-"), task

    yield from walk(spec["root"]["dag"])


def _seconds(text: str) -> float:
    assert text.endswith("s"), text
    return float(text[:-1])


@pytest.mark.parametrize("search", ["sae", "pso", "m2n2"])
@pytest.mark.parametrize("size", ["tiny", "7b", "70b"])
def test_every_task_is_retried_for_longer_than_its_attempts_take(tmp_path, search, size):
    out = tmp_path / "p.yaml"
    compile_pipeline(out, CompileOptions(search=search, steps=2, model_size=size), workflow_size=False)
    spec = next(yaml.safe_load_all(out.read_text()))
    seen = set()
    for name, component, task in _container_tasks(spec):
        kind = KINDS.get(component, "small" if component in SMALL else None)
        assert kind is not None, f"{component}: no retry kind in this test's table"
        seen.add(kind)
        policy = task.get("retryPolicy")
        assert policy, f"{name} ({component}) has no retry policy"
        assert policy["maxRetryCount"] == 2
        attempts = policy["maxRetryCount"] + 1
        assert _seconds(policy["backoffMaxDuration"]) >= attempts * expected_run_s(kind, size), name
        assert _seconds(policy["backoffMaxDuration"]) > 3600 or kind in ("small", "merge")  # kfp's default was 3600
        assert _seconds(policy["backoffMaxDuration"]) == retry_plan(kind, size, 2).max_duration_s
    assert seen == set(RETRY_KINDS)


def test_expected_runs_grow_with_the_model_and_the_final_step_is_the_longest():
    for kind in ("merge", "evaluate", "final"):
        assert expected_run_s(kind, "tiny") < expected_run_s(kind, "7b") < expected_run_s(kind, "70b")
    assert expected_run_s("final", "7b") > expected_run_s("evaluate", "7b") > 3600  # longer than kfp's default
    with pytest.raises(ValueError, match="unknown retry kind"):
        expected_run_s("gpu", "7b")
