"""Identical components are shared: the compiled pipeline does not grow a copy of every step per generation."""

import yaml

from saemerge.pipeline.common import CompileOptions
from saemerge.pipeline.compile import compile_pipeline, share_identical_components


def _spec(path):
    return next(yaml.safe_load_all(path.read_text()))


def test_every_generation_runs_one_shared_generation_component(tmp_path):
    sizes = {}
    for steps in (2, 12):
        out = tmp_path / f"p{steps}.yaml"
        stats = compile_pipeline(out, CompileOptions(steps=steps))
        spec = _spec(out)
        root = spec["root"]["dag"]["tasks"]
        generation_refs = {t["componentRef"]["name"] for name, t in root.items() if name.startswith("sae-generation")}
        assert len([n for n in root if n.startswith("sae-generation")]) == steps
        assert generation_refs == {"comp-sae-generation"}
        sizes[steps] = (stats["components"], stats["bytes"])
    assert sizes[12][0] == sizes[2][0]  # no component per generation
    assert sizes[12][1] - sizes[2][1] < 10 * 2_500  # one root task per generation: ~2 KB of input wiring


def test_sharing_merges_leaves_first_then_the_dags_that_use_them():
    leaf = {"executorLabel": "exec-a", "inputDefinitions": {"parameters": {"x": {"parameterType": "STRING"}}}}
    dag = lambda ref: {"dag": {"tasks": {"a": {"componentRef": {"name": ref}, "taskInfo": {"name": "a"}}}}}  # noqa: E731
    spec = {
        "components": {
            "comp-a": dict(leaf),
            "comp-a-2": dict(leaf),
            "comp-g": dag("comp-a"),
            "comp-g-2": dag("comp-a-2"),
            "comp-b": {"executorLabel": "exec-b"},
        },
        "root": {
            "dag": {
                "tasks": {
                    "g1": {"componentRef": {"name": "comp-g"}},
                    "g2": {"componentRef": {"name": "comp-g-2"}},
                    "b": {"componentRef": {"name": "comp-b"}},
                }
            }
        },
    }
    share_identical_components(spec)
    assert sorted(spec["components"]) == ["comp-a", "comp-b", "comp-g"]
    assert {t["componentRef"]["name"] for t in spec["root"]["dag"]["tasks"].values()} == {"comp-g", "comp-b"}


def _reaches(dag: dict, name: str, target: str) -> bool:
    deps = dag[name].get("dependentTasks", [])
    return target in deps or any(_reaches(dag, d, target) for d in deps)


def test_every_root_step_runs_after_the_init_step_that_writes_run_json(tmp_path):
    """The steps after the init step read the run's settings from run.json (steps/settings.py):
    every other task of the root DAG must depend on the init step, directly or through others."""
    for search in ("sae", "pso", "m2n2"):
        out = tmp_path / f"{search}.yaml"
        compile_pipeline(out, CompileOptions(search=search, steps=2))
        root = _spec(out)["root"]["dag"]["tasks"]
        init = {"sae": "init-population", "pso": "pso-init", "m2n2": "m2n2-init"}[search]

        assert all(_reaches(root, name, init) for name in root if name != init), search
        assert not any(name.startswith("sample-optimisation-set") for name in root), search  # drawn by evaluate
