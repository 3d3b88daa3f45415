"""The Workflow-size model: the compiler replay, the fitted compiled size, the end-of-run nodes.

The model is described in saemerge.pipeline.workflow_size; the SAE pipeline's numbers are in
the docstrings of the tests at the end.
"""

import copy
import json

import pytest
import yaml

from saemerge.pipeline import workflow_size as ws
from saemerge.pipeline.common import CompileOptions
from saemerge.pipeline.compile import compile_pipeline

HALF = ws.ETCD_LIMIT // 2


# ---------------------------------------------------------------- hand-made specs


def _component(name: str, body: str = "print(1)") -> tuple[dict, dict]:
    comp = {
        "executorLabel": f"exec-{name}",
        "inputDefinitions": {"parameters": {"x": {"parameterType": "STRING"}}},
        "outputDefinitions": {"parameters": {"Output": {"parameterType": "STRING"}}},
    }
    impl = {"container": {"image": "python:3.11", "command": ["sh", "-c", body], "args": ["--executor_input", "{{$}}"]}}
    return comp, impl


def _task(ref: str, name: str, after: str | None = None) -> dict:
    x = (
        {"taskOutputParameter": {"producerTask": after, "outputParameterKey": "Output"}}
        if after
        else {"componentInputParameter": "x"}
    )
    return {
        "componentRef": {"name": ref},
        "inputs": {"parameters": {"x": x}},
        "taskInfo": {"name": name},
        "cachingOptions": {"enableCache": True},
    }


def _spec(tasks: int, components: int, *, k8s: bool = False, bodies: bool = True) -> tuple[dict, dict | None]:
    """`tasks` chained tasks over `components` container components (distinct bodies unless
    ``bodies=False``: then copies, as kfp emits comp-x, comp-x-2, ...)."""
    comps, execs, dag = {}, {}, {}
    for c in range(components):
        comp, impl = _component(f"c{c}", f"print({c})" if bodies else "print(0)")
        comps[f"comp-c{c}"], execs[f"exec-c{c}"] = comp, impl
    for t in range(tasks):
        dag[f"t{t}"] = _task(f"comp-c{t % components}", f"t{t}", f"t{t - 1}" if t else None)
    spec = {
        "components": comps,
        "deploymentSpec": {"executors": execs},
        "pipelineInfo": {"name": "toy"},
        "root": {
            "dag": {"tasks": dag},
            "inputDefinitions": {"parameters": {"x": {"parameterType": "STRING", "defaultValue": "hi"}}},
        },
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.0",
    }
    platform = None
    if k8s:
        secret = {
            "secretAsEnv": [{"secretName": "s3", "keyToEnv": [{"envVar": "K", "secretKey": "K"}]}],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        }
        platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {e: secret for e in execs}}}}}
    return spec, platform


def _with_subdag(tasks: int, shared: bool) -> dict:
    """`tasks` root tasks each running a two-step sub-DAG: one shared DAG component, or a copy each."""
    spec, _ = _spec(2, 2)
    body = {
        "dag": {"tasks": copy.deepcopy(spec["root"]["dag"]["tasks"])},
        "inputDefinitions": {"parameters": {"x": {"parameterType": "STRING"}}},
    }
    root = {}
    for t in range(tasks):
        ref = "comp-body" if shared else f"comp-body-{t}"
        spec["components"][ref] = copy.deepcopy(body)
        root[f"g{t}"] = {
            "componentRef": {"name": ref},
            "taskInfo": {"name": f"g{t}"},
            "inputs": {"parameters": {"x": {"componentInputParameter": "x"}}},
        }
    spec["root"]["dag"]["tasks"] = root
    return spec


def test_go_json_conventions():
    assert ws.gojson({"b": 2.0, "a": "<x & y>"}) == '{"a":"\\u003cx \\u0026 y\\u003e","b":2}'
    assert ws.glen('{"a":1}') == len('"{\\"a\\":1}"')


def test_replay_stores_one_spec_and_implementation_per_container():
    spec, _ = _spec(4, 2, bodies=False)  # two copies of one container
    args = ws.compile_replay(spec).arguments
    assert sorted(k.split("-")[0] for k in args) == ["components", "components", "implementations"]
    assert "components-root" in args
    assert all(len(k.split("-", 1)[1]) == 64 for k in args if k != "components-root")  # sha256 keys


def test_compiled_size_grows_with_tasks_and_components():
    by_tasks = [ws.estimate_compiled(*_spec(n, 1))["bytes"] for n in range(1, 7)]
    assert by_tasks == sorted(by_tasks) and len(set(by_tasks)) == 6
    by_components = [ws.estimate_compiled(*_spec(6, c))["bytes"] for c in range(1, 7)]
    assert by_components == sorted(by_components) and len(set(by_components)) == 6
    per_task = (by_tasks[-1] - by_tasks[0]) / 5
    assert 500 < per_task < 3_000, per_task  # driver + executor task entries, the task spec copied in


def test_one_shared_component_costs_less_than_copies():
    for tasks in (2, 8):
        shared = ws.estimate_compiled(*_spec(tasks, 1, k8s=True))["bytes"]
        copies = ws.estimate_compiled(*_spec(tasks, tasks, k8s=True, bodies=False))["bytes"]
        assert shared < copies
    dag_shared = ws.estimate_compiled(_with_subdag(8, shared=True))["bytes"]
    dag_copies = ws.estimate_compiled(_with_subdag(8, shared=False))["bytes"]
    assert dag_shared < dag_copies - 7 * 1_000  # each copy: a DAG template and its spec as an argument


def test_fit_is_recorded_with_its_commit():
    assert ws.COMPILED_FIT["commit"] == ws.BACKEND_COMMIT
    assert ws.COMPILED_FIT["pairs"] >= 140 and ws.COMPILED_FIT["mean_rel_error"] < 0.01
    assert ws.COMPILED_FIT["holdout"]["mean_rel_error"] < 0.01
    for term in ("argument_bytes", "task_bytes"):  # the replay's bytes are the compiler's bytes
        assert ws.COMPILED_COEFFICIENTS[term] == pytest.approx(1.0, abs=0.02)


# ---------------------------------------------------------------- the run


def _write_run(tmp_path, items: int):
    """A kfp.local-like run: the producer step returned `items` records."""
    root = tmp_path / f"run{items}" / "kfp-root" / "toy-2026"
    (root / "make-items").mkdir(parents=True)
    (root / "make-items" / "executor_output.json").write_text(
        json.dumps({"parameterValues": {"Output": [{"id": i, "uri": f"s3://b/{i}"} for i in range(items)]}})
    )
    return tmp_path / f"run{items}"


def _loop_spec() -> dict:
    """make-items -> ParallelFor(items): consume(item)."""
    spec, _ = _spec(1, 1)
    make, impl = _component("make-items")
    make["outputDefinitions"]["parameters"]["Output"]["parameterType"] = "LIST"
    spec["components"] = {"comp-make-items": make, "comp-c0": spec["components"]["comp-c0"]}
    spec["deploymentSpec"]["executors"]["exec-make-items"] = impl
    spec["components"]["comp-for-loop-1"] = {
        "dag": {
            "tasks": {
                "c0": {
                    "componentRef": {"name": "comp-c0"},
                    "taskInfo": {"name": "c0"},
                    "inputs": {"parameters": {"x": {"componentInputParameter": "item"}}},
                }
            }
        },
        "inputDefinitions": {"parameters": {"items": {"parameterType": "LIST"}, "item": {"parameterType": "STRUCT"}}},
    }
    spec["root"]["dag"]["tasks"] = {
        "make-items": _task("comp-make-items", "make-items"),
        "for-loop-1": {
            "componentRef": {"name": "comp-for-loop-1"},
            "taskInfo": {"name": "for-loop-1"},
            "dependentTasks": ["make-items"],
            "inputs": {
                "parameters": {
                    "items": {"taskOutputParameter": {"producerTask": "make-items", "outputParameterKey": "Output"}}
                }
            },
            "parameterIterator": {"itemInput": "item", "items": {"inputParameter": "items"}},
        },
    }
    return spec


def test_nodes_per_task_follow_the_backend():
    """Container task: driver pod, executor DAG, launcher pod; each in a Retry node (KFP's
    manifests give every template a retry strategy). Plus entrypoint, root driver, root DAG."""
    spec, _ = _spec(1, 1)
    assert ws.estimate_runtime(spec, retries=False)["nodes"] == 3 + 3
    assert ws.estimate_runtime(spec)["nodes"] == 2 * (3 + 3)


def _retried(spec: dict) -> dict:
    spec = copy.deepcopy(spec)
    for task in spec["root"]["dag"]["tasks"].values():
        task["retryPolicy"] = {"maxRetryCount": 2, "backoffDuration": "30s", "backoffFactor": 2.0}
    return spec


def test_failed_attempts_add_an_executor_attempt_and_a_launcher_pod():
    """A retried task that fails once: a failed executor DAG attempt with its launcher (a Retry
    node and its failed pod attempt) beside the successful one, with the same inputs."""
    spec = _retried(_spec(4, 1)[0])
    clean = ws.estimate_runtime(spec, failure_share=0.0)
    every = ws.estimate_runtime(spec, failure_share=1.0)
    quarter = ws.estimate_runtime(spec, failure_share=0.25)
    assert clean["failed_attempts"] == 0 and clean["retried_tasks"] == 4
    assert every["failed_attempts"] == 4 and quarter["failed_attempts"] == 1
    assert every["nodes"] - clean["nodes"] == 4 * 3 and quarter["nodes"] - clean["nodes"] == 3
    assert every["bytes"] > quarter["bytes"] > clean["bytes"]
    # a task without a retry policy never fails in the model
    assert ws.estimate_runtime(_spec(4, 1)[0], failure_share=1.0)["failed_attempts"] == 0


def test_task_results_completion_status_counts_each_pod_outside_the_gzipped_nodes():
    nodes = {"wf-1": {"hostNodeName": "h"}, "wf-2": {}, "wf-3": {"hostNodeName": "h"}}
    assert ws.task_results_bytes(nodes) == len('"taskResultsCompletionStatus":{"wf-1":true,"wf-3":true},')
    assert ws.task_results_bytes({}) == 0
    spec, _ = _spec(3, 1)
    run = ws.estimate_runtime(spec)
    pods = run["node_types"]["Pod"]
    assert run["task_results_bytes"] > pods * len('"x":true,')


def test_parallel_for_iterations_come_from_the_measured_list(tmp_path):
    """Per iteration: iteration DAG, body driver, body DAG and the body's container task (3)."""
    spec = _loop_spec()
    small = ws.estimate_runtime(spec, run_root=_write_run(tmp_path, 2), retries=False)
    large = ws.estimate_runtime(spec, run_root=_write_run(tmp_path, 5), retries=False)
    assert large["nodes"] - small["nodes"] == 3 * (3 + 3)
    assert large["container_tasks"] - small["container_tasks"] == 3
    assert large["bytes"] > small["bytes"] > large["compiled_bytes"]


def test_payloads_measured_from_a_local_run(tmp_path):
    profile = ws.measure_payloads(_write_run(tmp_path, 4))
    assert profile["make-items"]["parameters"]["Output"][0] == {"id": 0, "uri": "s3://b/0"}
    with pytest.raises(FileNotFoundError):
        ws.measure_payloads(tmp_path / "nothing")


def test_larger_payloads_make_larger_nodes():
    spec, _ = _spec(3, 1)
    plain = ws.estimate_runtime(spec)
    wide = ws.estimate_runtime(spec, params={"x": "y" * 5_000})
    # the root parameter reaches the first task's executor input: twice in its pod-spec-patch,
    # which is written six times (driver output and Retry copy, executor DAG and launcher inputs
    # and their Retry nodes), each time JSON-escaped once more than in the patch
    assert wide["bytes"] - plain["bytes"] > 6 * 2 * 5_000


# ---------------------------------------------------------------- the SAE pipeline


@pytest.fixture(scope="module")
def sae(tmp_path_factory):
    out = {}
    for steps in (12, 24):
        path = tmp_path_factory.mktemp("sae") / f"sae{steps}.yaml"
        compile_pipeline(path, CompileOptions(steps=steps))
        out[steps] = tuple(yaml.safe_load_all(path.read_text()))
    return out


def test_sae_compiled_workflow_stays_under_half_the_limit(sae):
    """Compiled SAE Workflow (backend 7b70c7b): ~105 KB at 12 generations, ~124 KB at 24
    (~1.6 KB per generation: one root task entry with its 3 input wirings; was ~4 KB with 25)."""
    sizes = {steps: ws.estimate_compiled(*docs)["bytes"] for steps, docs in sae.items()}
    for steps, size in sizes.items():
        assert size < HALF, f"{steps} generations: compiled Workflow ~{size} B, over half of {ws.ETCD_LIMIT}"
    per_generation = (sizes[24] - sizes[12]) / 12
    assert per_generation < 2_500, per_generation


def test_sae_runtime_estimate(sae):
    """End of a run, archive 8, 2 experts (step outputs of micro runs, lists stretched), every
    node in a Retry node (KFP's Argo defaults), no cache hits; records handed between steps as
    Parquet URIs (steps/handoff.py), each step's compiled body one call into the image's
    saemerge.components (pipeline/compile.py delegate_steps); one in 20 retried tasks failing
    once, and status.taskResultsCompletionStatus (Argo 3.6) counted. A generation is 4 steps
    (evaluate archive, schedule step + pairs, evaluate offspring, archive update) and the
    merges, the steps after init read the run's settings from run.json (steps/settings.py),
    the pod's env is one annotation, the S3 secret one volume (not 4 secretKeyRef env entries),
    the launch script has no alignment spaces, and the compiled steps carry no docstring
    descriptions; the patch modelled as the driver writes it (secret and emptyDir volumes, the
    field-path env, resource* quantities):
      12 generations: ~5.7 MB uncompressed, 1124 nodes (5 failed attempts), 109 container
        tasks; ~0.455 MB as Argo stores it (status.nodes gzipped above 1 MiB);
      24 generations: ~10.6 MB, 2111 nodes (10 failed attempts), 205 container tasks; ~0.748 MB
        stored. (Without failed attempts: ~0.449 and ~0.740 MB stored.) The pipeline before
        the secret volume and the trimmed launch script: ~0.795 MB at 24 in this model,
        ~0.789 MB in the model before it wrote the volumes and the field-path env.
    (Before, with 6 steps a generation and every run setting an input of every step: ~8.3 MB /
    ~0.78 MB stored at 12, ~15.5 MB / ~1.33 MB at 24; before the handoff: ~12.4 MB / ~1.12 MB at
    12, ~23.6 MB / ~2.03 MB at 24.) Most of a node's bytes are Argo's and KFP's own per-node
    fields and the pod-spec patch (the executor input twice, the component spec, the step's
    signature), written 6 times per task: ~3 KB per container task as stored, ~1 KB more per
    ParallelFor iteration.
    """
    r12 = ws.estimate_runtime(*sae[12], archive_size=8)
    r24 = ws.estimate_runtime(*sae[24], archive_size=8)
    r12_small = ws.estimate_runtime(*sae[12], archive_size=4)
    # 5 root steps (init, evaluate and archive of the initial population, final evaluate, report),
    # 4 prunes per expert, and 12 x (4 steps + 4 merges)
    assert r12["container_tasks"] == 5 + 2 * 4 + 12 * (4 + 8 // 2)
    assert r12_small["container_tasks"] == 5 + 2 * 4 + 12 * (4 + 4 // 2)
    assert r24["bytes"] > r12["bytes"] > r12_small["bytes"]
    assert r12["with_uris_bytes"] <= r12["bytes"]
    summary = {n: (r["bytes"], r["stored_bytes"], r["nodes"]) for n, r in ((12, r12), (24, r24))}
    assert r12["stored_bytes"] < r12["bytes"], summary
    assert r12["failed_attempts"] == 5 and r12["retried_tasks"] == 109, summary
    assert r12["stored_bytes"] > r12["compressed_nodes_bytes"] + r12["task_results_bytes"], summary
    # a 12-generation run fits as Argo stores it: under its own 1 MiB and etcd's limit, and under half
    assert r12["stored_bytes"] < HALF, summary
    # 24 generations: under Argo's 1 MiB (it was ~1.33 MB, over it)
    assert r24["stored_bytes"] < ws.ARGO_COMPRESS_ABOVE, summary


def test_record_lists_travel_as_uris(sae):
    """No step's input or output is a list of records: between steps they are handoff URIs."""
    spec = sae[12][0]
    payloads = ws.MEASURED_PAYLOADS
    for step in ("evaluate", "archive-update", "schedule-step", "pair-and-merge", "prune", "m2n2-select", "pso-move"):
        out = payloads[step]["parameters"]["Output"]
        values = out if isinstance(out, list) else [out]
        assert values and all(isinstance(v, str) and "/handoff/" in v for v in values), (step, out)
    generation = next(c for name, c in spec["components"].items() if name.startswith("comp-sae-generation"))
    assert generation["inputDefinitions"]["parameters"]["archive"]["parameterType"] == "LIST"


@pytest.mark.parametrize("search", ["pso", "m2n2"])
def test_comparators_loops_follow_the_configuration(tmp_path, search):
    """PSO's swarm (the base and each expert with one DARE copy: 5 particles) and M2N2's children
    (4) are stretched from the measured runs, so their loops are counted: PSO 6 root steps + the
    particles, then 3 steps and a move per particle per step; M2N2 5 root steps + 8 prunes, then
    4 steps and 4 crossovers a generation."""
    path = tmp_path / f"{search}.yaml"
    compile_pipeline(path, CompileOptions(search=search, steps=12))
    run = ws.estimate_runtime(*yaml.safe_load_all(path.read_text()))
    expected = 6 + 5 + 12 * (3 + 5) if search == "pso" else 5 + 8 + 12 * (4 + 4)
    assert run["container_tasks"] == expected
    assert run["stored_bytes"] < HALF


def test_sae_runtime_workflow_stays_under_half_the_limit(sae):
    run = ws.estimate_runtime(*sae[24], archive_size=8)
    assert run["stored_bytes"] < HALF, (
        f"24 generations, archive 8: end-of-run Workflow ~{run['bytes'] / 1e6:.1f} MB uncompressed "
        f"({run['nodes']} nodes, {run['container_tasks']} container tasks), ~{run['stored_bytes'] / 1e6:.2f} MB "
        "as Argo stores it"
    )


def test_report(sae):
    rep = ws.report(*sae[12])
    assert rep["compiled_bytes"] == ws.estimate_compiled(*sae[12])["bytes"]
    assert rep["backend_commit"] == ws.BACKEND_COMMIT and rep["limit"] == ws.ETCD_LIMIT
    assert rep["nested_dags"] == 12
    assert rep["text"].startswith("Argo Workflow (KFP backend 7b70c7b): compiled ~")
    assert "\n" not in rep["text"]
    # the corrected estimate: failed attempts retried and Argo's task results map are in it
    assert rep["failed_attempts"] == rep["runtime"]["failed_attempts"] > 0
    assert rep["task_results_bytes"] > 0
    assert f"{rep['failed_attempts']} failed attempt(s) retried" in rep["text"]


def test_compile_prints_the_corrected_estimate(tmp_path, capsys):
    from saemerge.cli import main

    assert main(["compile", "--steps", "2", "--out", str(tmp_path / "p.yaml")]) == 0
    out, err = capsys.readouterr()
    workflow = json.loads(out)["workflow"]
    assert workflow["failed_attempts"] >= 1 and workflow["task_results_bytes"] > 0
    assert "failed attempt(s) retried" in err and f"~{workflow['stored_bytes'] / 1e3:.0f} KB as Argo stores it" in err


def test_a_secret_volume_is_modelled_as_the_driver_patches_it():
    """k8s.go extendPodSpecPatch: Volume{Name: secretName, Secret: {SecretName, Optional: &optional}}
    and VolumeMount{Name: secretName, MountPath}, marshalled by Go (omitempty fields dropped)."""
    from saemerge.pipeline.workflow_size.runtime import secret_volume

    compiled = {  # as kfp-kubernetes' use_secret_as_volume writes it
        "mountPath": "/var/run/secrets/saemerge-s3",
        "optional": False,
        "secretName": "saemerge-s3",
        "secretNameParameter": {"runtimeValue": {"constant": "saemerge-s3"}},
    }
    volume, mount = secret_volume(compiled)
    assert ws.gojson(volume) == '{"name":"saemerge-s3","secret":{"optional":false,"secretName":"saemerge-s3"}}'
    assert ws.gojson(mount) == '{"mountPath":"/var/run/secrets/saemerge-s3","name":"saemerge-s3"}'
