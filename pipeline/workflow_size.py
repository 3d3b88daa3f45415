"""How big the Argo Workflow the Kubeflow Pipelines v2 backend makes of a pipeline gets.

The KFP v2 backend compiles a pipeline spec into one Argo ``Workflow`` object, which
Kubernetes stores whole in etcd (a request limit of about 1.5 MiB on many clusters; Argo's
controller itself starts gzipping ``status.nodes`` above 1 MiB, ``MAX_WORKFLOW_SIZE``). The
object grows while the run goes on: every node's status, with its input and output parameter
values, is written into it. This module estimates both sizes, as JSON bytes (what the API
server and etcd hold):

``estimate_compiled(spec, platform)``
    The Workflow the backend compiles from our ``saemerge compile`` output, before it runs.
    A model of ``backend/src/v2/compiler/argocompiler`` (kubeflow/pipelines at
    :data:`BACKEND_COMMIT`): the compiler is replayed on the spec to get the bytes it copies
    out of it, and a linear model on those, fitted on the backend's own compiler test data,
    adds the fixed parts (see :func:`compiled_features` for the terms and the Go they come
    from, and :data:`COMPILED_COEFFICIENTS` for the fit).
``estimate_runtime(spec, platform, run_root=None, ...)``
    The same object at the end of a full run: the compiled size plus ``status.nodes``, one
    entry per Argo node the run creates, each with its inputs and outputs (see
    :func:`estimate_runtime`). The nodes are built, not sized by a formula: the payloads are
    the parameter values a local run actually produced (``executor_output.json`` files under
    the run's kfp.local pipeline root), or, without a run, :data:`MEASURED_PAYLOADS`.
``report(spec, platform, run_root=None, limit=1_500_000)``
    Both, with their share of the limit and a one-line summary.

Which limit bites first: Argo's controller measures the whole object as JSON; above
``MAX_WORKFLOW_SIZE`` (1 MiB unless the cluster sets it) it replaces ``status.nodes`` by
``status.compressedNodes`` (gzip + base64), and if that is still above 1 MiB the workflow
errors ("workflow is longer than maximum allowed size"; offloading to a database only with
Argo persistence, which KFP's manifests do not configure). So the uncompressed size is the
object's real content, and ``stored_bytes`` (estimated by gzipping the built nodes) is what
must stay under 1 MiB, and under etcd's limit.

Not modelled: ``metadata.managedFields``; cache hits (a cached task's launcher is a skipped
node: smaller); failed attempts (each retry adds an attempt node with the same inputs);
exit handlers run as plain tasks; node ids, times and resource figures are realistic
placeholders, so the gzip estimate is somewhat optimistic.

Refit (prints the coefficients and the errors, all pairs and a held-out split)::

    python -m saemerge.pipeline.workflow_size --refit /path/to/kubeflow/pipelines
    python -m saemerge.pipeline.workflow_size --measure .saemerge/runs/<run-id>   # new payloads
    python -m saemerge.pipeline.workflow_size pipeline/sae_pipeline.yaml          # a report

The repository path may be a checkout or a bare clone (read with ``git show HEAD:...``); the
test data (``test_data/sdk_compiled_pipelines`` and ``test_data/compiled-workflows``) is not
shipped here.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# kubeflow/pipelines commit whose backend (argocompiler, driver, manifests) is modelled, and
# the argo-workflows commit whose controller (node status, retries, size limit) is modelled.
BACKEND_COMMIT = "7b70c7b95f6832772efd6fd0029a4024491a0f44"  # 2026-08-21, #13532
ARGO_COMMIT = "f016ad89eb269d282aec06dc491c29f396a38df4"  # 2026-08-21
ETCD_LIMIT = 1_500_000
ARGO_COMPRESS_ABOVE = 1024 * 1024  # workflow/packer/packer.go: MAX_WORKFLOW_SIZE default

# Fitted by `--refit` on kubeflow/pipelines@7b70c7b95f6832772efd6fd0029a4024491a0f44
# (BACKEND_COMMIT): least squares on all 147 pairs of test_data/sdk_compiled_pipelines/**/X.yaml
# and test_data/compiled-workflows/X.yaml, the target being the compiled Workflow as compact
# JSON. The byte terms come out at ~1 (the replay reproduces what the compiler copies); the
# constants are the shared templates (DAG + container drivers ~5.2 KB, one executor+impl pair
# ~2.2 KB, an importer ~1.5 KB). Worst pairs: mounted_cabundle_* (5%), compiled with
# CABUNDLE_* environment variables that add a CA volume the spec does not show.
COMPILED_COEFFICIENTS: dict[str, float] = {
    "const": 5249.6589,
    "argument_bytes": 0.9975,
    "arguments": 23.9443,
    "task_bytes": 1.0042,
    "tasks": -0.1806,
    "template_bytes": 1.1457,
    "templates": -24.1325,
    "executor_variants": 2207.1065,
    "importer_templates": 1542.9455,
    "variant_extra_bytes": 1.4738,
    "pipeline_name_bytes": 0.7723,
}
COMPILED_FIT: dict[str, Any] = {
    "commit": "7b70c7b95f6832772efd6fd0029a4024491a0f44",
    "pairs": 147,
    "mean_rel_error": 0.00192,
    "max_rel_error": 0.05409,
    "worst": "mounted_cabundle_configmap.yaml",
    "holdout": {
        "train_pairs": 117,
        "pairs": 30,
        "mean_rel_error": 0.00293,
        "max_rel_error": 0.05147,
        "worst": "mounted_cabundle_secret.yaml",
    },
}


# --------------------------------------------------------------------------- Go's JSON


def _go_value(obj: Any) -> Any:
    """Go's encoding/json prints a float64 that is a whole number without ".0"."""
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 1e21:
        return int(obj)
    if isinstance(obj, dict):
        return {k: _go_value(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_go_value(v) for v in obj]
    return obj


_HTML = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def gojson(obj: Any, normalize: bool = True) -> str:
    """``json.Marshal`` as Go writes it: compact, map keys sorted, ``<>&`` escaped.

    `normalize=False` skips the float rewrite (for values already free of whole floats).
    """
    text = json.dumps(_go_value(obj) if normalize else obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _HTML:
        if char in text:
            text = text.replace(char, escaped)
    return text


def glen(obj: Any, normalize: bool = True) -> int:
    """Bytes of ``gojson(obj)`` (UTF-8). For a string: the quoted, escaped string."""
    return len(gojson(obj, normalize).encode("utf-8"))


# --------------------------------------------------------------------------- the compiler


_EXIT = "ALL_UPSTREAM_TASKS_COMPLETED"
_DUMMY_IMAGES = ("argostub/createpvc", "argostub/deletepvc")


def _param(name: str, value: Any = None, default: Any = None) -> dict:
    p: dict[str, Any] = {"name": name}
    if default is not None:
        p["default"] = default
    if value is not None:
        p["value"] = value
    return p


def _depends(deps: Iterable[str]) -> str:
    return " && ".join(f"{d}.Succeeded" for d in deps)


def _out(task: str, param: str) -> str:
    return f"{{{{tasks.{task}.outputs.parameters.{param}}}}}"


def _wfparam(name: str) -> str:
    return f"{{{{workflow.parameters.{name}}}}}"


_IN_PARENT = "{{inputs.parameters.parent-dag-id}}"
_IN_ITERATION = "{{inputs.parameters.iteration-index}}"


def _strategy(task: dict) -> str:
    return task.get("triggerPolicy", {}).get("strategy", "")


def _retry_params(task: dict) -> list[dict]:
    """container.go getTaskRetryParametersWithValues."""
    rp = task.get("retryPolicy")
    if not rp:
        return []
    out = [_param("retry-max-count", str(rp.get("maxRetryCount", 0)))]
    if rp.get("backoffDuration"):
        out.append(_param("retry-backoff-duration", str(rp["backoffDuration"]).rstrip("s")))
    out.append(_param("retry-backoff-factor", gojson(rp.get("backoffFactor", 0))))
    if rp.get("backoffMaxDuration"):
        out.append(_param("retry-backoff-max-duration", str(rp["backoffMaxDuration"]).rstrip("s")))
    return out


def _pod_metadata_params(k8s: dict | None, values: bool) -> list[dict]:
    """container.go getPodMetadataParameters: annotations then labels, numbered when several."""
    meta = (k8s or {}).get("podMetadata") or {}
    out: list[dict] = []
    for kind, key_name, val_name in (
        ("annotations", "pod-metadata-annotation-key", "pod-metadata-annotation-val"),
        ("labels", "pod-metadata-label-key", "pod-metadata-label-val"),
    ):
        entries = meta.get(kind) or {}
        for i, k in enumerate(sorted(entries), start=1):
            kn, vn = (f"{key_name}-{i}", f"{val_name}-{i}") if len(entries) > 1 else (key_name, val_name)
            out += [_param(kn, k if values else None), _param(vn, entries[k] if values else None)]
    return out


@dataclass
class Compiled:
    """What argocompiler emits for one spec, as far as its size depends on the spec."""

    pipeline_name: str
    arguments: dict[str, str] = field(default_factory=dict)  # spec.arguments.parameters
    tasks: list[dict] = field(default_factory=list)  # every DAG task entry of every template
    shells: list[dict] = field(default_factory=list)  # DAG templates without their tasks
    executor_variants: dict[str, dict] = field(default_factory=dict)  # name -> {retry, metadata}
    importer_templates: set = field(default_factory=set)
    container_driver: bool = False
    component_keys: dict[str, str] = field(default_factory=dict)  # component -> argument key
    kubernetes: dict[str, dict] = field(default_factory=dict)  # component -> executor config
    runtime_config: str = "{}"


class _Compiler:
    """A replay of argocompiler's walk over a spec (visitor.go, argo.go, dag.go, container.go).

    Only what the Workflow's size depends on is reproduced: the arguments (one component
    spec and one implementation per distinct container, one spec per DAG component, one
    Kubernetes config per component), every DAG task entry with its arguments (the task
    spec JSON is copied into each), the DAG templates, and which shared system templates
    exist. The system templates themselves are constants of the fit.
    """

    def __init__(self, spec: dict, platform: dict | None):
        self.spec = copy.deepcopy(spec)  # the compiler mutates tasks (retry policy, deps)
        self.components = self.spec.get("components", {})
        self.executors = self.spec.get("deploymentSpec", {}).get("executors", {})
        k8s = ((platform or {}).get("platforms") or {}).get("kubernetes") or {}
        self.k8s_executors = (k8s.get("deploymentSpec") or {}).get("executors") or {}
        self.out = Compiled(pipeline_name=self.spec.get("pipelineInfo", {}).get("name", ""))
        self.visited: set[str] = set()

    # visitor.go Accept / dfs: bottom-up, each component once
    def run(self) -> Compiled:
        self._runtime_config()
        self._dfs("root", self.spec["root"], None)
        return self.out

    def _runtime_config(self) -> None:
        values = {}
        for name, p in self.spec["root"].get("inputDefinitions", {}).get("parameters", {}).items():
            if "defaultValue" in p:
                values[name] = p["defaultValue"]
            elif p.get("isOptional"):
                values[name] = None
        self.out.runtime_config = gojson({"parameterValues": values}) if values else "{}"

    def _dfs(self, name: str, comp: dict, calling_task: dict | None) -> None:
        if name in self.visited:
            return
        self.visited.add(name)
        label = comp.get("executorLabel")
        if label:
            if label in self.k8s_executors:  # spec_patch.go AddKubernetesSpec
                self.out.kubernetes[name] = self.k8s_executors[label]
                self.out.arguments.setdefault("kubernetes-" + name, gojson(self.k8s_executors[label]))
            impl = self.executors[label]
            body = impl.get("container") or impl.get("importer")
            key = self._key(name)
            self.out.arguments.setdefault("components-" + key, gojson(comp))
            self.out.arguments.setdefault("implementations-" + key, gojson(body))
            return
        tasks = comp["dag"].get("tasks", {})
        for tname in sorted(tasks):
            task = tasks[tname]
            if not task.get("retryPolicy") and calling_task is not None and calling_task.get("retryPolicy"):
                task["retryPolicy"] = calling_task["retryPolicy"]
            ref = task["componentRef"]["name"]
            self._dfs(ref, self.components[ref], task)
        self._dag(name, comp)

    def _key(self, name: str) -> str:
        """argo.go hashComponentContainer: sha256 of the container, else the component name."""
        if name == "root":
            return name
        comp = self.components.get(name, {})
        container = self.executors.get(comp.get("executorLabel", ""), {}).get("container")
        key = hashlib.sha256(gojson(container).encode()).hexdigest() if container is not None else name
        self.out.component_keys[name] = key
        return key

    def _placeholder(self, comp_name: str) -> str:
        return _wfparam("components-" + (self.out.component_keys.get(comp_name) or comp_name))

    # dag.go DAG
    def _dag(self, name: str, comp: dict) -> None:
        dag = comp["dag"]
        tasks = dag.get("tasks", {})
        for task in tasks.values():  # addImplicitDependencies
            deps = list(task.get("dependentTasks", []))
            for kind in ("parameters", "artifacts"):
                for spec in task.get("inputs", {}).get(kind, {}).values():
                    for ref in ("taskOutputParameter", "taskOutputArtifact"):
                        producer = spec.get(ref, {}).get("producerTask")
                        if producer and producer not in deps:
                            deps.append(producer)
            if deps:
                task["dependentTasks"] = sorted(deps)
        self.out.arguments.setdefault("components-" + name, gojson(comp))
        exit_for: dict[str, str] = {}
        for tname in sorted(tasks):
            task = tasks[tname]
            if _strategy(task) != _EXIT:
                continue
            hook = f"exit-hook-{name}-{tname}"
            for dep in task.get("dependentTasks", []):
                exit_for[dep] = hook
            self._shell(hook, [_param("parent-dag-id")])
            self.out.tasks += self._task(tname, task, _IN_PARENT)
        self._shell(name, [_param("parent-dag-id")])
        for tname in sorted(tasks):
            if _strategy(tasks[tname]) != _EXIT:
                self.out.tasks += self._task(tname, tasks[tname], _IN_PARENT, exit_template=exit_for.get(tname, ""))
        if name == "root":
            driver = self._dag_driver("root-driver", self._placeholder("root"), runtime_config=self.out.runtime_config)
            root = self._dag_task("root", "root", _out("root-driver", "execution-id"), "")
            root["depends"] = "root-driver.Succeeded"
            self._shell("entrypoint", None)
            self.out.tasks += [driver, root]

    def _shell(self, name: str, inputs: list[dict] | None, parallelism: int | None = None) -> None:
        shell: dict[str, Any] = {
            "name": name,
            "inputs": {"parameters": inputs} if inputs else {},
            "metadata": {},
            "outputs": {},
            "dag": {"tasks": []},
        }
        if parallelism:
            shell["parallelism"] = parallelism
        self.out.shells.append(shell)

    def _dag_task(
        self, name: str, template: str, parent: str, condition: str, exit_template: str = "", hook_parent: str = ""
    ) -> dict:
        task = {
            "name": name,
            "template": template,
            "arguments": {"parameters": [_param("parent-dag-id", parent), _param("condition", condition)]},
        }
        if exit_template:
            task["hooks"] = {
                "exit": {"template": exit_template, "arguments": {"parameters": [_param("parent-dag-id", hook_parent)]}}
            }
        return task

    def _dag_driver(
        self,
        name: str,
        component: str,
        parent: str = "",
        task_json: str = "",
        task_name: str = "",
        iteration: str = "",
        runtime_config: str | None = None,
    ) -> dict:
        params = [_param("component", component)]
        if iteration:
            params.append(_param("iteration-index", iteration))
        if parent:
            params.append(_param("parent-dag-id", parent))
        if runtime_config is not None:
            params += [_param("runtime-config", runtime_config), _param("driver-type", "ROOT_DAG")]
        if task_json:
            params.append(_param("task", task_json))
        if task_name:
            params.append(_param("task-name", task_name))
        return {"name": name, "template": "system-dag-driver", "arguments": {"parameters": params}}

    # dag.go task
    def _task(
        self, name: str, task: dict, parent: str, iteration: str = "", exit_template: str = "", task_name: str = ""
    ) -> list[dict]:
        comp_name = task["componentRef"]["name"]
        comp = self.components[comp_name]
        placeholder = self._placeholder(comp_name)
        task_json = gojson(task)
        if not iteration and ("parameterIterator" in task or "artifactIterator" in task):
            return self._iterator(name, task, task_json, parent)
        deps = task.get("dependentTasks", []) if not iteration and _strategy(task) != _EXIT else []
        effective = task_name or name
        condition = task.get("triggerPolicy", {}).get("condition", "")
        if "dag" in comp:
            driver = self._dag_driver(name + "-driver", placeholder, parent, task_json, effective, iteration)
            if deps:
                driver["depends"] = _depends(deps)
            dag = self._dag_task(
                name,
                comp_name,
                _out(name + "-driver", "execution-id"),
                _out(name + "-driver", "condition"),
                exit_template,
                parent,
            )
            dag["depends"] = name + "-driver.Succeeded"
            if condition:
                dag["when"] = _out(name + "-driver", "condition") + " != false"
            return [driver, dag]
        impl = self.executors[comp["executorLabel"]]
        if "importer" in impl:
            variant = "system-importer-workspace" if impl["importer"].get("downloadToWorkspace") else "system-importer"
            self.out.importer_templates.add(variant)
            key = self.out.component_keys.get(comp_name, comp_name)
            return [
                {
                    "name": name,
                    "template": variant,
                    "arguments": {
                        "parameters": [
                            _param("task", task_json),
                            _param("component", placeholder),
                            _param("importer", _wfparam("implementations-" + key)),
                            _param("parent-dag-id", parent),
                        ]
                    },
                }
            ]
        self.out.container_driver = True
        key = self.out.component_keys[comp_name]
        params = [
            _param("component", placeholder),
            _param("task", task_json),
            _param("container", _wfparam("implementations-" + key)),
            _param("task-name", effective),
            _param("parent-dag-id", parent),
        ]
        if iteration:
            params.append(_param("iteration-index", iteration))
        if comp_name in self.out.kubernetes:
            params.append(_param("kubernetes-config", _wfparam("kubernetes-" + comp_name)))
        driver = {"name": name + "-driver", "template": "system-container-driver", "arguments": {"parameters": params}}
        if deps:
            driver["depends"] = _depends(deps)
        if impl["container"].get("image") in _DUMMY_IMAGES:
            driver["name"] = name
            return [driver]
        k8s = self.out.kubernetes.get(comp_name)
        variant = self._executor_variant(task, k8s)
        executor = {
            "name": name,
            "template": variant,
            "depends": name + "-driver.Succeeded",
            "arguments": {
                "parameters": [
                    _param("pod-spec-patch", _out(name + "-driver", "pod-spec-patch")),
                    _param("cached-decision", _out(name + "-driver", "cached-decision"), "false"),
                    *_pod_metadata_params(k8s, True),
                    *_retry_params(task),
                ]
            },
        }
        if condition:
            executor["when"] = _out(name + "-driver", "condition") + " != false"
        if exit_template:
            executor["hooks"] = {
                "exit": {"template": exit_template, "arguments": {"parameters": [_param("parent-dag-id", parent)]}}
            }
        return [driver, executor]

    def _executor_variant(self, task: dict, k8s: dict | None) -> str:
        """container.go addContainerExecutorTemplate: one executor+impl pair per variant name."""
        name = "system-container-executor"
        retry = bool(task.get("retryPolicy"))
        if retry:
            name = "retry-" + name
        meta = (k8s or {}).get("podMetadata")
        if meta is not None:
            name = f"metadata-{len(meta.get('annotations') or {})}-{len(meta.get('labels') or {})}-" + name
        self.out.executor_variants.setdefault(name, {"retry": retry, "metadata": _pod_metadata_params(k8s, False)})
        return name

    # dag.go iteratorTask / iterationItemTask
    def _iterator(self, name: str, task: dict, task_json: str, parent: str) -> list[dict]:
        comp_name = task["componentRef"]["name"]
        loop = f"{comp_name}-{name}-iterator"
        iterations = f"{comp_name}-iteration"
        driver = self._dag_driver("iteration-driver", self._placeholder(comp_name), parent, task_json, name)
        it = {
            "name": "iteration-iterations",
            "template": iterations,
            "depends": "iteration-driver.Succeeded",
            "arguments": {
                "parameters": [
                    _param("parent-dag-id", _out("iteration-driver", "execution-id")),
                    _param("iteration-index", "{{item}}"),
                ]
            },
            "withSequence": {"count": _out("iteration-driver", "iteration-count")},
        }
        if task.get("triggerPolicy", {}).get("condition"):
            it["when"] = _out("iteration-driver", "condition") + " != false"
        limit = task.get("iteratorPolicy", {}).get("parallelismLimit")
        self._shell(loop, [_param("parent-dag-id")], parallelism=limit)
        self.out.tasks += [driver, it]
        self._shell(iterations, [_param("parent-dag-id"), _param("iteration-index")])
        self.out.tasks += self._task("iteration-item", task, _IN_PARENT, iteration=_IN_ITERATION, task_name=name)
        outer = {"name": name, "template": loop, "arguments": {"parameters": [_param("parent-dag-id", parent)]}}
        if task.get("dependentTasks"):
            outer["depends"] = _depends(task["dependentTasks"])
        return [outer]


def compile_replay(spec: dict, platform: dict | None = None) -> Compiled:
    """Replay argocompiler on `spec` (and the `platforms.kubernetes` document, if any)."""
    return _Compiler(spec, platform).run()


def compiled_features(spec: dict, platform: dict | None = None) -> dict[str, float]:
    """The terms of the compiled-size model, read from backend/src/v2/compiler/argocompiler.

    - ``argument_bytes``, ``arguments``: ``spec.arguments.parameters`` (argo.go
      saveProtoToArguments): each component's spec and implementation JSON, stored once per
      distinct container (hashComponentContainer) whatever the number of tasks using it, one
      spec per DAG component (dag.go DAG), one per Kubernetes executor config (spec_patch.go).
    - ``task_bytes``, ``tasks``: every DAG task entry, with the task spec JSON copied into its
      driver's arguments (dag.go task; container.go containerDriverTask/containerExecutorTask;
      twice for a ParallelFor, dag.go iteratorTask/iterationItemTask).
    - ``template_bytes``, ``templates``: one DAG template per DAG component, per ParallelFor
      (loop and iteration templates) and per exit hook, plus the entrypoint (dag.go).
    - ``container_driver``, ``executor_variants``, ``importer_templates``: the shared system
      templates (container.go addContainerDriverTemplate, addContainerExecutorTemplate: one
      executor+impl pair per variant, plain/retry/pod-metadata; importer.go). The DAG driver
      (dag.go addDAGDriverTemplate) is always there: in ``const``.
    - ``variant_extra_bytes``: what the retry and pod-metadata variants add to their pair.
    - ``pipeline_name_bytes``: the pipeline name, in ``generateName`` and every driver's args.
    """
    c = compile_replay(spec, platform)
    drivers = 1 + int(c.container_driver) + len(c.importer_templates)
    extra = 0
    for name, v in c.executor_variants.items():
        prefix = len(name) - len("system-container-executor")
        extra += 3 * prefix  # executor and impl template names, the executor's reference to impl
        if v["retry"]:
            extra += 620  # 4 inputs x 3 places, retryStrategy, KFP_RETRY_INDEX env (container.go)
        extra += sum(glen(p) + 1 for p in v["metadata"]) * 2  # executor and impl inputs
        extra += sum(len(p["name"]) * 2 + 32 for p in v["metadata"])  # executor's arguments, impl metadata
    return {
        "const": 1.0,
        "argument_bytes": float(sum(len(k) + glen(v) for k, v in c.arguments.items())),
        "arguments": float(len(c.arguments)),
        "task_bytes": float(sum(glen(t) for t in c.tasks)),
        "tasks": float(len(c.tasks)),
        "template_bytes": float(sum(glen(s) for s in c.shells)),
        "templates": float(len(c.shells)),
        "container_driver": float(c.container_driver),
        "executor_variants": float(len(c.executor_variants)),
        "importer_templates": float(len(c.importer_templates)),
        "variant_extra_bytes": float(extra),
        "pipeline_name_bytes": float(len(c.pipeline_name) * drivers),
    }


def _fit_order() -> tuple[str, ...]:
    """The terms the fit uses (``container_driver`` is in every test pipeline: folded into ``const``)."""
    return (
        "const",
        "argument_bytes",
        "arguments",
        "task_bytes",
        "tasks",
        "template_bytes",
        "templates",
        "executor_variants",
        "importer_templates",
        "variant_extra_bytes",
        "pipeline_name_bytes",
    )


def estimate_compiled(spec: dict, platform: dict | None = None) -> dict:
    """Estimated bytes (JSON) of the Workflow the backend compiles from `spec` (+ platform spec).

    Returns ``bytes``, the model's ``terms`` (bytes per term: coefficient x feature), and the
    fit's relative errors on the backend's test data (``fit``).
    """
    feats = compiled_features(spec, platform)
    terms = {k: COMPILED_COEFFICIENTS.get(k, 0.0) * feats[k] for k in _fit_order()}
    return {
        "bytes": int(round(sum(terms.values()))),
        "terms": {k: int(round(v)) for k, v in terms.items()},
        "features": feats,
        "fit": COMPILED_FIT,
        "backend_commit": BACKEND_COMMIT,
    }


# --------------------------------------------------------------------------- payloads

# The step outputs of a local run, written by `--measure .saemerge/runs/<run-id>` (a few
# elements of the lists estimate_runtime scales; "__arguments__": the run's parameters).
# Measured on run h-sae2, 2026-11-30: `saemerge run --local --bench-size micro --steps 2
# --param archive_size=4` (opt/test sizes 6/8 per task), records handed over by URI
# (steps/handoff.py).
MEASURED_FROM = "saemerge run --local h-sae2 (micro bench, 2 generations, archive 4), 2026-11-30"
_MEASURED_JSON = r"""
{
"__arguments__": {"archive_size": 4, "attraction": "linear", "base_uri": "s3://saemerge/bench/micro-seed0-v2/models/base", "baselines": ["weight_average", "task_arithmetic", "ties"], "beta": 1.0, "competition": "local_then_global", "data_uri": "s3://saemerge/bench/micro-seed0-v2/data", "eval_batch_size": 64, "eval_device": "auto", "eval_dtype": "auto", "experts": ["s3://saemerge/bench/micro-seed0-v2/models/math", "s3://saemerge/bench/micro-seed0-v2/models/multilingual"], "gamma": 0.05, "granularity": "tensor", "include_base": false, "measure": "zero_count", "merge_device": "cpu", "opt_sizes": {"saebench_math": 6, "saebench_multilingual": 6}, "reverse": false, "run_uri": "s3://saemerge/runs/h-sae2", "s_max": 0.6, "s_min": 0.1, "score_cache": "", "scoring": "global", "seed": 0, "t0": 3, "t_mult": 2, "test_sizes": {"saebench_math": 8, "saebench_multilingual": 8}},
"archive-update": {"artifacts": {"metrics": {"accepted": 0, "best.saebench_math": 0.0, "best.saebench_multilingual": 0.0, "best_fitness": 0.029980468750000003, "best_score": 0.0, "generation": 1, "mean_fitness": 0.023730468750000004, "mean_sparsity": 0.474609375, "offspring": 2, "s_t": 0.22499999999999998}}, "parameters": {"Output": ["s3://saemerge/runs/h-sae2/gen-01/handoff/archive-bba058e84c1d.parquet"]}},
"evaluate": {"artifacts": {"metrics": {"best_fitness": 0.011276584201388891, "mean_fitness": 0.011268446180555558, "scored": 2.0}}, "parameters": {"Output": ["s3://saemerge/runs/h-sae2/gen-01/handoff/scored-offspring-cf0810bc5154.parquet"]}},
"final-evaluate": {"artifacts": {"best_model": {"checkpoint_uri": "s3://saemerge/runs/h-sae2/models/9dd9de35cacd37a989c1e8252051f7c081ffe30557244100b6a1db8c6eb88f58", "content_hash": "9dd9de35cacd37a989c1e8252051f7c081ffe30557244100b6a1db8c6eb88f58", "framework": "transformers", "id": "m-9dd9de35cacd", "origin": "expert:math@0.6", "overall_fitness": 0.07164713541666667, "overall_score": 0.041666666666666664, "s_t": 0.6, "sparsity": 0.599609375, "status": "member"}, "metrics": {"base.macro": 0.1875, "expert:math.macro": 0.1875, "expert:multilingual.macro": 0.1875, "sae.macro": 0.1875, "task_arithmetic.macro": 0.1875, "ties.macro": 0.1875, "weight_average.macro": 0.1875}}, "parameters": {"Output": [{"id": "base", "macro": 0.1875, "method": "base", "origin": "base", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "uri": "s3://saemerge/bench/micro-seed0-v2/models/base"}, {"id": "math", "macro": 0.1875, "method": "expert:math", "origin": "expert", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "uri": "s3://saemerge/bench/micro-seed0-v2/models/math"}, {"id": "multilingual", "macro": 0.1875, "method": "expert:multilingual", "origin": "expert", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "uri": "s3://saemerge/bench/micro-seed0-v2/models/multilingual"}, {"id": "m-b63039bfafb3", "macro": 0.1875, "method": "weight_average", "origin": "linear {}", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "sparsity": 0.0, "uri": "s3://saemerge/runs/h-sae2/models/b63039bfafb305aceaeb3c9de3f36a1222fa6be0f8c6018bc735581478b02727"}, {"id": "m-10bb40eaf148", "macro": 0.1875, "method": "task_arithmetic", "origin": "task_arithmetic alpha=0.3", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "sparsity": 0.0, "uri": "s3://saemerge/runs/h-sae2/models/10bb40eaf1484d87ffcb8cb9311fa74b74f6a94fcaa42dc543beabfa02d77ab1"}, {"id": "m-759f661513fb", "macro": 0.1875, "method": "ties", "origin": "ties {'density': 0.2, 'alpha': 1.0}", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "sparsity": 0.6457790798611112, "uri": "s3://saemerge/runs/h-sae2/models/759f661513fb035ec36bfcdd05e00735fcc4696e011e0745e5a571eb25de765c"}, {"id": "m-9dd9de35cacd", "macro": 0.1875, "method": "sae", "origin": "expert:math@0.6", "scores": {"saebench_math": 0.0, "saebench_multilingual": 0.375}, "sparsity": 0.599609375, "uri": "s3://saemerge/runs/h-sae2/models/9dd9de35cacd37a989c1e8252051f7c081ffe30557244100b6a1db8c6eb88f58"}]}},
"init-population": {"artifacts": {"metrics": {"variants": 8}}, "parameters": {"Output": [{"name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.0}, {"name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.1}, {"name": "expert:math", "source": "s3://saemerge/bench/micro-seed0-v2/models/math", "sparsity": 0.35}]}},
"pair-and-merge": {"artifacts": {"child": {"checkpoint_uri": "s3://saemerge/runs/h-sae2/models/96bb0027b000acf0eb86787160549223862630e273277b883f16da404ec57fe0", "content_hash": "96bb0027b000acf0eb86787160549223862630e273277b883f16da404ec57fe0", "framework": "transformers", "id": "m-96bb0027b000", "lambda_mean": 0.36831275720164597, "origin": "sae", "parents": "m-2543a1d77fd7,m-9dd9de35cacd", "s_t": 0.22499999999999998, "sparsity": 0.22520616319444445, "status": "candidate"}}, "parameters": {"Output": "s3://saemerge/runs/h-sae2/gen-01/handoff/child-0-32c52a1bcafb.parquet"}},
"pair-parents": {"artifacts": {}, "parameters": {"Output": ["s3://saemerge/runs/h-sae2/gen-01/handoff/pair-0-a2b48711631c.parquet", "s3://saemerge/runs/h-sae2/gen-01/handoff/pair-1-6df73e1879f3.parquet"]}},
"prune": {"artifacts": {"model": {"checkpoint_uri": "s3://saemerge/runs/h-sae2/models/7578842bbf8e25f2e90b32625f56a1215d117198bb288afcc7ea134bd9dabe57", "content_hash": "7578842bbf8e25f2e90b32625f56a1215d117198bb288afcc7ea134bd9dabe57", "framework": "transformers", "id": "m-7578842bbf8e", "origin": "expert:math@0", "s_t": 0.0, "sparsity": 0.0, "status": "candidate"}}, "parameters": {"Output": "s3://saemerge/runs/h-sae2/init/handoff/prune-m-7578842bbf8e-3503ead5367f.parquet"}},
"report": {"artifacts": {"report_html": {}, "report_md": {}}, "parameters": {"Output": "s3://saemerge/runs/h-sae2/final/report.md"}},
"sample-optimisation-set": {"artifacts": {}, "parameters": {"Output": "s3://saemerge/runs/h-sae2/samples/gen-01"}},
"schedule-step": {"artifacts": {}, "parameters": {"Output": 0.22499999999999998}}
}
"""
MEASURED_PAYLOADS: dict[str, Any] = json.loads(_MEASURED_JSON)

_SAMPLE_ELEMENTS = 3


def _task_key(name: str) -> str:
    """comp-evaluate-2 / evaluate-2 -> evaluate (components and task directories alike)."""
    return re.sub(r"(-\d+)+$", "", name.removeprefix("comp-"))


def measure_payloads(run_root: Path) -> dict[str, Any]:
    """Output parameter values and artifact metadata per step, from a kfp.local run.

    kfp.local writes each task's outputs to ``<pipeline root>/<run>/<task>/executor_output.json``
    (``for-loop-N-iteration-i/<task>/`` inside loops). Lists keep their first few elements
    (their length is set by the run configuration, :func:`estimate_runtime`).
    """
    found: dict[str, Any] = {}
    for path in sorted(Path(run_root).rglob("executor_output.json")):
        key = _task_key(path.parent.name)
        data = json.loads(path.read_text())
        entry = found.setdefault(key, {"parameters": {}, "artifacts": {}})
        for name, value in (data.get("parameterValues") or {}).items():
            if isinstance(value, list) and key in LIST_LENGTHS:  # a few elements: the length is scaled
                have = entry["parameters"].setdefault(name, [])
                if isinstance(have, list):
                    have += [v for v in value if v not in have][: _SAMPLE_ELEMENTS - len(have)]
            else:
                entry["parameters"].setdefault(name, value)
        for name, arts in (data.get("artifacts") or {}).items():
            for art in arts.get("artifacts", [])[:1]:
                entry["artifacts"].setdefault(name, art.get("metadata") or {})
    if not found:
        raise FileNotFoundError(f"no executor_output.json under {run_root}: not a kfp.local run")
    return found


def _cycle(elements: list, n: int) -> list:
    return [copy.deepcopy(elements[i % len(elements)]) for i in range(n)] if elements else []


def _list_len(value: Any) -> int:
    return len(value) if isinstance(value, list) else 0


# How long the list each SAE step returns is, from its inputs and the run's parameters
# (SAE-SPEC §3, §6.1): steps/population.py init_population (each expert at 4 sparsities, +
# the base) and pair_parents (archive_size // 2 pairs, one handoff URI each). Record sets
# (evaluate, archive_update) are one handoff URI whatever their size (steps/handoff.py).
# Steps not listed keep the length measured in the local run.
LIST_LENGTHS = {
    "init-population": lambda i: 4 * _list_len(i.get("experts")) + int(bool(i.get("include_base"))),
    "pair-parents": lambda i: int(i.get("archive_size") or 0) // 2,
}

_TYPE_DEFAULTS = {
    "STRING": "s3://bucket/run/value",
    "NUMBER_DOUBLE": 0.123456789,
    "NUMBER_INTEGER": 12,
    "BOOLEAN": True,
    "LIST": [],
    "STRUCT": {},
}


def _step_outputs(comp_name: str, comp: dict, inputs: dict, payloads: dict) -> tuple[dict, dict]:
    """(output parameter values, output artifact metadata) of one step."""
    key = _task_key(comp_name)
    sample = payloads.get(key, {})
    params = {}
    for name, spec in comp.get("outputDefinitions", {}).get("parameters", {}).items():
        value = copy.deepcopy(sample.get("parameters", {}).get(name, _TYPE_DEFAULTS.get(spec.get("parameterType"), "")))
        if isinstance(value, list) and key in LIST_LENGTHS:
            value = _cycle(value, LIST_LENGTHS[key](inputs))
        params[name] = _go_value(value)
    arts = {
        name: sample.get("artifacts", {}).get(name, {})
        for name in comp.get("outputDefinitions", {}).get("artifacts", {})
    }
    return params, arts


# --------------------------------------------------------------------------- the run


def _fnv32a(text: str) -> int:
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


_TS = "2026-08-21T10:00:00Z"
_HOST = "ip-10-0-123-45.eu-west-1.compute.internal"
_URI_STANDIN = "s3://saemerge/runs/sae-20260821-100000/gen-07/offspring.parquet"


def _uri_standin(value: Any) -> Any:
    """What a list or record becomes when steps pass the URI of the Parquet file they wrote."""
    return _URI_STANDIN if isinstance(value, (list, dict)) else value


class _Runtime:
    """The ``status.nodes`` a successful run writes, node by node (Argo ``NodeStatus`` JSON).

    What creates which node (Argo workflow/controller/operator.go, dag.go):
    every template execution is a node with the template's inputs, resolved; with the retry
    strategy KFP's manifests give every template (workflowDefaults.templateDefaults in
    manifests/kustomize/third-party/argo/base/workflow-controller-configmap-patch.yaml), a
    ``Retry`` node plus its attempt ``name(0)``, both carrying the inputs, the Retry node a
    copy of the attempt's outputs. Per KFP task (argocompiler dag.go/container.go):
    container task = driver pod + executor DAG + launcher pod; DAG task = driver pod + DAG;
    ParallelFor = loop DAG + driver pod + TaskGroup + per iteration an iteration DAG, the body
    DAG's driver pod and the body DAG with its tasks.
    What the values are (backend/src/v2/driver/driver.go initPodSpecPatch, k8s.go): a
    container driver's inputs are the component spec, task spec, implementation and
    Kubernetes config (the workflow arguments, resolved); its output ``pod-spec-patch`` holds
    the launcher command with the executor input JSON (every input parameter value) and the
    component spec, and the user command with ``{{$}}`` resolved (the executor input again);
    the executor DAG and launcher pod get that patch as their input.
    """

    def __init__(
        self,
        spec: dict,
        compiled: Compiled,
        payloads: dict,
        params: dict,
        *,
        retries: bool = True,
        uris: bool = False,
        namespace: str = "kubeflow-user-example-com",
    ):
        self.spec = spec
        self.components = spec["components"]
        self.executors = spec.get("deploymentSpec", {}).get("executors", {})
        self.c = compiled
        self.payloads = payloads
        self.params = params
        self.retries = retries
        self.uris = uris
        self.ns = namespace
        self.pname = compiled.pipeline_name
        self.wf = f"{self.pname[:57]}-x7k2p"
        self.run_id = "0b1c2d3e-4f50-4172-8394-a5b6c7d8e9f0"
        self.root = f"minio://mlpipeline/v2/artifacts/{self.pname}/{self.run_id}"
        self.nodes: dict[str, dict] = {}
        self.names: dict[str, str] = {}
        self.execution = 4200
        self.container_tasks = 0
        self.gpu_tasks = 0

    # ---- nodes
    def _id(self, name: str) -> str:
        return self.wf if name == self.wf else f"{self.wf}-{_fnv32a(name)}"

    def _new(
        self,
        name: str,
        typ: str,
        template: str,
        boundary: str | None,
        parent: str | None,
        inputs: list | None = None,
        outputs: dict | None = None,
        pod: bool = False,
        gpu: bool = False,
        retried: bool = False,
    ) -> str:
        nid = self._id(name)
        display = name
        if boundary and name.startswith(self.names[boundary]):
            display = re.sub(r"^(\[\d+\])?\.", "", name[len(self.names[boundary]) :])
        node: dict[str, Any] = {
            "id": nid,
            "name": name,
            "displayName": display,
            "type": typ,
            "templateName": template,
            "templateScope": "local/" + self.wf,
            "phase": "Succeeded",
            "startedAt": _TS,
            "finishedAt": _TS,
            "progress": "1/1",
            "resourcesDuration": {"cpu": 1234, "memory": 56789},
        }
        if gpu:
            node["resourcesDuration"]["nvidia.com/gpu"] = 1234
        if boundary:
            node["boundaryID"] = boundary
        if inputs:
            node["inputs"] = {"parameters": inputs}
        if pod:
            outputs = dict(outputs or {})
            pod_name = f"{self.wf}-{template}-{_fnv32a(name)}"[:63]
            key = f"private-artifacts/{self.ns}/{self.wf}/2026/08/21/{pod_name}/main.log"
            outputs["artifacts"] = [{"name": "main-logs", "s3": {"key": key}}]
            outputs["exitCode"] = "0"
            node["hostNodeName"] = _HOST
            node["taskResultSynced"] = True
        if outputs:
            node["outputs"] = outputs
        if retried:
            node["nodeFlag"] = {"retried": True}
        node["children"] = []
        self.nodes[nid] = node
        self.names[nid] = name
        if parent:
            self.nodes[parent]["children"].append(nid)
        return nid

    def _exec(
        self,
        name: str,
        template: str,
        typ: str,
        boundary: str | None,
        parent: str | None,
        inputs: list | None = None,
        outputs: dict | None = None,
        pod: bool = False,
        gpu: bool = False,
    ) -> tuple[str, str]:
        """A template execution: the node, wrapped in a Retry node when templates retry."""
        if not self.retries:
            return self._new(name, typ, template, boundary, parent, inputs, outputs, pod, gpu), name
        retry = self._new(name, "Retry", template, boundary, parent, inputs, copy.deepcopy(outputs) if pod else None)
        attempt = self._new(name + "(0)", typ, template, boundary, retry, inputs, outputs, pod, gpu, retried=True)
        if pod:  # the retry node's outputs are the attempt's, log artifact included
            self.nodes[retry]["outputs"] = copy.deepcopy(self.nodes[attempt]["outputs"])
        if typ == "DAG":
            self.nodes[retry]["outboundNodes"] = [attempt]
        return attempt, name + "(0)"

    def _exec_id(self) -> str:
        self.execution += 1
        return str(self.execution)

    # ---- drivers
    def _dag_driver(
        self,
        name: str,
        boundary: str,
        parent: str,
        component: str,
        task: str = "",
        task_name: str = "",
        parent_dag: str = "0",
        iteration: int = -1,
        runtime_config: str = "",
        driver_type: str = "DAG",
        iterations: int = 0,
    ) -> str:
        inputs = [
            _param("component", component),
            _param("runtime-config", runtime_config, ""),
            _param("task", task, ""),
            _param("task-name", task_name, ""),
            _param("parent-dag-id", parent_dag, "0"),
            _param("iteration-index", str(iteration), "-1"),
            _param("driver-type", driver_type, "DAG"),
        ]
        execution = self._exec_id()
        outputs = {
            "parameters": [
                {"name": "execution-id", "value": execution, "valueFrom": {"path": "/tmp/outputs/execution-id"}},
                {
                    "name": "iteration-count",
                    "value": str(iterations),
                    "valueFrom": {"default": "0", "path": "/tmp/outputs/iteration-count"},
                },
                {
                    "name": "condition",
                    "value": "true",
                    "valueFrom": {"default": "true", "path": "/tmp/outputs/condition"},
                },
            ]
        }
        self._exec(name, "system-dag-driver", "Pod", boundary, parent, inputs, outputs, pod=True)
        return execution

    # ---- the run
    def run(self) -> None:
        top, top_name = self._exec(self.wf, "entrypoint", "DAG", None, None)
        runtime_config = gojson({"parameterValues": self.params})
        execution = self._dag_driver(
            f"{top_name}.root-driver",
            top,
            top,
            self.c.arguments["components-root"],
            runtime_config=runtime_config,
            driver_type="ROOT_DAG",
        )
        root, root_name = self._exec(f"{top_name}.root", "root", "DAG", top, top, [_param("parent-dag-id", execution)])
        self._dag(self.spec["root"], root_name, root, execution, dict(self.params), {})

    def _dag(self, comp: dict, name: str, nid: str, execution: str, values: dict, artifacts: dict) -> tuple[dict, dict]:
        tasks = comp["dag"].get("tasks", {})
        done: dict[str, tuple[dict, dict]] = {}
        for tname in _topological(tasks):
            task = tasks[tname]
            params, arts = self._resolve(task, values, artifacts, done)
            if "parameterIterator" in task or "artifactIterator" in task:
                done[tname] = self._iterator(name, nid, execution, tname, task, params, arts)
            else:
                done[tname] = self._task(name, nid, execution, tname, task, params, arts)
        outs = comp["dag"].get("outputs", {})
        params_out: dict[str, Any] = {}
        for key, spec in outs.get("parameters", {}).items():
            sources = (
                [spec["valueFromParameter"]]
                if "valueFromParameter" in spec
                else spec.get("valueFromOneof", {}).get("parameterSelectors", [])
            )
            for src in sources:
                value = done.get(src.get("producerSubtask"), ({}, {}))[0].get(src.get("outputParameterKey"))
                if value is not None:
                    params_out[key] = value
                    break
        arts_out: dict[str, Any] = {}
        for key, spec in outs.get("artifacts", {}).items():
            for src in spec.get("artifactSelectors", []):
                value = done.get(src.get("producerSubtask"), ({}, {}))[1].get(src.get("outputArtifactKey"))
                if value is not None:
                    arts_out[key] = value
                    break
        return params_out, arts_out

    def _resolve(self, task: dict, values: dict, artifacts: dict, done: dict) -> tuple[dict, dict]:
        params: dict[str, Any] = {}
        for pname, s in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in s:
                params[pname] = values.get(s["componentInputParameter"])
            elif "taskOutputParameter" in s:
                t = s["taskOutputParameter"]
                params[pname] = done.get(t["producerTask"], ({}, {}))[0].get(t["outputParameterKey"])
            elif "runtimeValue" in s:
                params[pname] = s["runtimeValue"].get("constant")
            elif "taskFinalStatus" in s:
                params[pname] = {
                    "state": "SUCCEEDED",
                    "pipelineJobResourceName": self.wf,
                    "pipelineTaskName": s["taskFinalStatus"].get("producerTask", ""),
                    "error": {},
                }
            else:
                params[pname] = None
        arts: dict[str, Any] = {}
        for aname, s in task.get("inputs", {}).get("artifacts", {}).items():
            if "componentInputArtifact" in s:
                arts[aname] = artifacts.get(s["componentInputArtifact"])
            elif "taskOutputArtifact" in s:
                t = s["taskOutputArtifact"]
                arts[aname] = done.get(t["producerTask"], ({}, {}))[1].get(t["outputArtifactKey"])
        return params, arts

    def _task(
        self,
        dag_name: str,
        dag_id: str,
        execution: str,
        tname: str,
        task: dict,
        params: dict,
        arts: dict,
        iteration: int = -1,
        task_name: str = "",
    ) -> tuple[dict, dict]:
        ref = task["componentRef"]["name"]
        comp = self.components[ref]
        effective = task_name or tname
        if "dag" in comp:
            sub_exec = self._dag_driver(
                f"{dag_name}.{tname}-driver",
                dag_id,
                dag_id,
                self.c.arguments["components-" + ref],
                gojson(task),
                effective,
                execution,
                iteration,
            )
            sub, sub_name = self._exec(
                f"{dag_name}.{tname}", ref, "DAG", dag_id, dag_id, [_param("parent-dag-id", sub_exec)]
            )
            return self._dag(comp, sub_name, sub, sub_exec, params, arts)
        impl = self.executors[comp["executorLabel"]]
        key = self.c.component_keys.get(ref, ref)
        if "importer" in impl:
            inputs = [
                _param("task", gojson(task)),
                _param("component", self.c.arguments["components-" + key]),
                _param("importer", self.c.arguments["implementations-" + key]),
                _param("parent-dag-id", execution),
            ]
            self._exec(f"{dag_name}.{tname}", "system-importer", "Pod", dag_id, dag_id, inputs, pod=True)
            return {}, {name: {} for name in comp.get("outputDefinitions", {}).get("artifacts", {})}
        return self._container(
            dag_name,
            dag_id,
            execution,
            tname,
            task,
            ref,
            comp,
            impl["container"],
            key,
            params,
            arts,
            iteration,
            effective,
        )

    def _container(
        self, dag_name, dag_id, execution, tname, task, ref, comp, container, key, params, arts, iteration, effective
    ) -> tuple[dict, dict]:
        self.container_tasks += 1
        out_params, out_arts = _step_outputs(ref, comp, {**self.params, **params}, self.payloads)
        k8s = self.c.kubernetes.get(ref)
        shown = {k: _uri_standin(v) for k, v in params.items()} if self.uris else params
        ei = self._executor_input(effective, comp, shown, arts)
        patch = self._pod_spec_patch(comp, container, ei, execution, k8s)
        gpu = bool((container.get("resources") or {}).get("accelerator"))
        self.gpu_tasks += gpu
        inputs = [
            _param("component", self.c.arguments["components-" + key]),
            _param("task", gojson(task)),
            _param("container", self.c.arguments["implementations-" + key]),
            _param("task-name", effective),
            _param("parent-dag-id", execution),
            _param("iteration-index", str(iteration), "-1"),
            _param("kubernetes-config", self.c.arguments.get("kubernetes-" + ref, ""), ""),
        ]
        outputs = {
            "parameters": [
                {
                    "name": "pod-spec-patch",
                    "value": patch,
                    "valueFrom": {"default": "", "path": "/tmp/outputs/pod-spec-patch"},
                },
                {
                    "name": "cached-decision",
                    "default": "false",
                    "value": "false",
                    "valueFrom": {"default": "false", "path": "/tmp/outputs/cached-decision"},
                },
                {
                    "name": "condition",
                    "value": "true",
                    "valueFrom": {"default": "true", "path": "/tmp/outputs/condition"},
                },
            ]
        }
        self._exec(
            f"{dag_name}.{tname}-driver", "system-container-driver", "Pod", dag_id, dag_id, inputs, outputs, pod=True
        )
        variant = _variant_name(task, k8s)
        extra = [{"name": p["name"], "value": p["value"]} for p in _pod_metadata_params(k8s, True)]
        extra += [{"name": p["name"], "default": "0", "value": p["value"]} for p in _retry_params(task)]
        ex, ex_name = self._exec(
            f"{dag_name}.{tname}",
            variant,
            "DAG",
            dag_id,
            dag_id,
            [_param("pod-spec-patch", patch), _param("cached-decision", "false", "false"), *extra],
        )
        impl_variant = variant.replace("system-container-executor", "system-container-impl")
        launcher, _ = self._exec(
            f"{ex_name}.executor",
            impl_variant,
            "Pod",
            ex,
            ex,
            [_param("pod-spec-patch", patch), *extra],
            pod=True,
            gpu=gpu,
        )
        self.nodes[ex]["outboundNodes"] = [launcher]
        return out_params, out_arts

    def _iterator(self, dag_name, dag_id, execution, tname, task, params, arts) -> tuple[dict, dict]:
        ref = task["componentRef"]["name"]
        it = task.get("parameterIterator") or {}
        items_spec = it.get("items", {})
        items = (
            params.get(items_spec["inputParameter"])
            if "inputParameter" in items_spec
            else json.loads(items_spec.get("raw", "[]"))
        )
        items = items if isinstance(items, list) else []
        loop, loop_name = self._exec(
            f"{dag_name}.{tname}",
            f"{ref}-{tname}-iterator",
            "DAG",
            dag_id,
            dag_id,
            [_param("parent-dag-id", execution)],
        )
        loop_exec = self._dag_driver(
            f"{loop_name}.iteration-driver",
            loop,
            loop,
            self.c.arguments["components-" + ref],
            gojson(task),
            tname,
            execution,
            iterations=len(items),
        )
        group = self._new(f"{loop_name}.iteration-iterations", "TaskGroup", f"{ref}-iteration", loop, loop)
        collected: list[tuple[dict, dict]] = []
        for i, item in enumerate(items):
            body, body_name = self._exec(
                f"{loop_name}.iteration-iterations({i}:{i})",
                f"{ref}-iteration",
                "DAG",
                loop,
                group,
                [_param("parent-dag-id", loop_exec), _param("iteration-index", str(i))],
            )
            values = dict(params)
            values[it.get("itemInput", "")] = item
            collected.append(
                self._task(
                    body_name, body, loop_exec, "iteration-item", task, values, arts, iteration=i, task_name=tname
                )
            )
        keys = {k for p, _ in collected for k in p}
        return {k: [p.get(k) for p, _ in collected] for k in keys}, {}

    # ---- what a driver writes
    def _executor_input(self, task_name: str, comp: dict, params: dict, arts: dict) -> dict:
        salt = "6f1e2d3c-4b5a-4968-8776-655443322110"
        root = f"{self.root}/{task_name}/{salt}"
        inputs: dict[str, Any] = {"parameterValues": {k: v for k, v in params.items() if v is not None}}
        in_defs = comp.get("inputDefinitions", {}).get("artifacts", {})
        in_arts = {
            k: {
                "artifacts": [
                    {
                        "name": k,
                        "uri": f"{self.root}/upstream/{salt}/{k}",
                        "type": in_defs.get(k, {}).get("artifactType", {}),
                        "metadata": md or {},
                    }
                ]
            }
            for k, md in arts.items()
            if md is not None
        }
        if in_arts:
            inputs["artifacts"] = in_arts
        out_defs = comp.get("outputDefinitions", {})
        out_arts = {
            k: {"artifacts": [{"name": k, "uri": f"{root}/{k}", "type": v.get("artifactType", {})}]}
            for k, v in out_defs.get("artifacts", {}).items()
        }
        out_arts["executor-logs"] = {
            "artifacts": [
                {"name": "executor-logs", "uri": f"{root}/executor-logs", "type": {"schemaTitle": "system.Artifact"}}
            ]
        }
        return {
            "inputs": inputs,
            "outputs": {
                "parameters": {k: {"outputFile": f"/tmp/kfp/outputs/{k}"} for k in out_defs.get("parameters", {})},
                "artifacts": out_arts,
                "outputFile": f"/minio/mlpipeline/v2/artifacts/{self.pname}/{self.run_id}/{task_name}/{salt}/output_metadata.json",
            },
        }

    def _pod_spec_patch(self, comp: dict, container: dict, ei: dict, execution: str, k8s: dict | None) -> str:
        ei_json = gojson(ei)
        values = ei["inputs"]["parameterValues"]

        def resolve(arg: str) -> str:
            if arg == "{{$}}":
                return ei_json

            def one(m: re.Match) -> str:
                v = values.get(m.group(1))
                return v if isinstance(v, str) else gojson(v)

            return re.sub(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}", one, arg)

        launcher = [
            "/kfp-launcher/launch",
            "--executor_type",
            "container",
            "--pipeline_name",
            self.pname,
            "--run_id",
            self.run_id,
            "--execution_id",
            execution,
            "--executor_input",
            ei_json,
            "--component_spec",
            gojson(comp),
            "--pod_name",
            "$(KFP_POD_NAME)",
            "--pod_uid",
            "$(KFP_POD_UID)",
            "--ml_pipeline_server_address",
            "ml-pipeline.kubeflow.svc.cluster.local",
            "--ml_pipeline_server_port",
            "8887",
            "--mlmd_server_address",
            "metadata-grpc-service.kubeflow.svc.cluster.local",
            "--mlmd_server_port",
            "8080",
            "--publish_logs",
            "true",
            "--ml_pipeline_tls_enabled=false",
            "--metadata_tls_enabled=false",
            "--ca_cert_path",
            "",
            "--cache_disabled=false",
            "--log_level",
            "1",
            "--",
        ]
        main: dict[str, Any] = {
            "name": "main",
            "image": container.get("image", ""),
            "command": launcher,
            "args": [resolve(a) for a in [*container.get("command", []), *container.get("args", [])]],
        }
        res = container.get("resources") or {}
        limits: dict[str, str] = {}
        requests: dict[str, str] = {}
        acc = res.get("accelerator") or {}
        if acc.get("resourceType") or acc.get("type"):
            limits[acc.get("resourceType") or acc["type"]] = str(acc.get("resourceCount") or acc.get("count") or 1)
        for field_, target, key in (
            ("cpuLimit", limits, "cpu"),
            ("memoryLimit", limits, "memory"),
            ("cpuRequest", requests, "cpu"),
            ("memoryRequest", requests, "memory"),
        ):
            if res.get(field_):
                target[key] = str(res[field_])
        main["resources"] = {**({"limits": limits} if limits else {}), **({"requests": requests} if requests else {})}
        env = [{"name": e["name"], "value": e.get("value", "")} for e in container.get("env", [])]
        pod: dict[str, Any] = {"containers": [main]}
        for secret in (k8s or {}).get("secretAsEnv", []):
            for kv in secret.get("keyToEnv", []):
                env.append(
                    {
                        "name": kv["envVar"],
                        "valueFrom": {
                            "secretKeyRef": {
                                "name": secret.get("secretName", ""),
                                "key": kv["secretKey"],
                                "optional": bool(secret.get("optional")),
                            }
                        },
                    }
                )
        if env:
            main["env"] = env
        config = k8s or {}
        if config.get("tolerations"):
            pod["tolerations"] = [
                {k: v for k, v in t.items() if k in ("key", "operator", "value", "effect")}
                for t in config["tolerations"]
            ]
        if config.get("nodeSelector", {}).get("labels"):
            pod["nodeSelector"] = config["nodeSelector"]["labels"]
        for mount in config.get("pvcMount", []):
            name = mount.get("constant") or mount.get("pvcName") or "pvc"
            pod.setdefault("volumes", []).append({"name": name, "persistentVolumeClaim": {"claimName": name}})
            main.setdefault("volumeMounts", []).append({"name": name, "mountPath": mount.get("mountPath", "/data")})
        return gojson(pod)


def _variant_name(task: dict, k8s: dict | None) -> str:
    name = "system-container-executor"
    if task.get("retryPolicy"):
        name = "retry-" + name
    meta = (k8s or {}).get("podMetadata")
    if meta is not None:
        name = f"metadata-{len(meta.get('annotations') or {})}-{len(meta.get('labels') or {})}-" + name
    return name


def _topological(tasks: dict) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in tasks:
            return
        seen.add(name)
        task = tasks[name]
        deps = set(task.get("dependentTasks", []))
        for kind in ("parameters", "artifacts"):
            for s in task.get("inputs", {}).get(kind, {}).values():
                for ref in ("taskOutputParameter", "taskOutputArtifact"):
                    if ref in s:
                        deps.add(s[ref]["producerTask"])
        for dep in sorted(deps):
            visit(dep)
        order.append(name)

    for name in sorted(tasks):
        visit(name)
    return order


def _run_parameters(
    spec: dict, run_root: Path | None, archive_size: int | None, experts: int | None, params: dict | None
) -> dict:
    """The run's parameter values: the spec's defaults, the local run's, then the arguments."""
    values: dict[str, Any] = {}
    for name, p in spec["root"].get("inputDefinitions", {}).get("parameters", {}).items():
        values[name] = p.get("defaultValue", _TYPE_DEFAULTS.get(p.get("parameterType"), ""))
    if run_root is not None:
        for candidate in (Path(run_root) / "arguments.json", Path(run_root).parent / "arguments.json"):
            if candidate.is_file():
                values.update({k: v for k, v in json.loads(candidate.read_text()).items() if k in values})
                break
    else:
        values.update({k: v for k, v in MEASURED_PAYLOADS.get("__arguments__", {}).items() if k in values})
    if archive_size is not None and "archive_size" in values:
        values["archive_size"] = archive_size
    if experts is not None and "experts" in values:
        known = [e for e in values.get("experts") or [] if isinstance(e, str)] or ["s3://saemerge/models/expert"]
        values["experts"] = [known[i] if i < len(known) else f"{known[i % len(known)]}-{i}" for i in range(experts)]
    values.update(params or {})
    return values


def _workflow_extras(compiled: Compiled, rt: _Runtime) -> dict:
    """What the API server and the controller add besides the nodes (JSON), at the end of a run.

    API server (backend/src/apiserver/template/v2_template.go RunWorkflow): the run id label
    on the workflow and its pods, the run name annotation, ``sidecar.istio.io/inject`` on
    every template; the controller: workflowDefaults merged into the spec (ttlStrategy,
    templateDefaults.retryStrategy from KFP's manifests), labels, and ``status`` besides
    ``nodes`` (phase, times, conditions, the artifact repository it used).
    """
    templates = (
        len(compiled.shells)
        + 1
        + int(compiled.container_driver)
        + 2 * len(compiled.executor_variants)
        + len(compiled.importer_templates)
    )
    metadata = {
        "name": rt.wf,
        "namespace": rt.ns,
        "uid": rt.run_id,
        "resourceVersion": "123456789",
        "generation": 42,
        "creationTimestamp": _TS,
        "labels": {
            "pipeline/runid": rt.run_id,
            "workflows.argoproj.io/completed": "true",
            "workflows.argoproj.io/phase": "Succeeded",
            "pipelines.kubeflow.org/v2_component": "true",
        },
        "annotations": {
            "pipelines.kubeflow.org/run_name": f"{rt.pname} 2026-08-21 10:00:00",
            "workflows.argoproj.io/pod-name-format": "v2",
        },
    }
    spec_extra = {
        "ttlStrategy": {"secondsAfterCompletion": 3600, "secondsAfterSuccess": 3600, "secondsAfterFailure": 3600},
        "templateDefaults": {"retryStrategy": {"limit": "2", "retryPolicy": "OnError"}},
        "podMetadata": {"labels": {"pipeline/runid": rt.run_id}},
    }
    status = {
        "phase": "Succeeded",
        "startedAt": _TS,
        "finishedAt": _TS,
        "progress": "100/100",
        "resourcesDuration": {"cpu": 123456, "memory": 12345678, "nvidia.com/gpu": 123456},
        "conditions": [{"type": "PodRunning", "status": "False"}, {"type": "Completed", "status": "True"}],
        "artifactRepositoryRef": {
            "configMap": "artifact-repositories",
            "key": "default-v1",
            "default": True,
            "artifactRepository": {
                "archiveLogs": True,
                "s3": {
                    "endpoint": f"seaweedfs.{rt.ns}.svc:9000",
                    "bucket": "mlpipeline",
                    "insecure": True,
                    "keyFormat": "private-artifacts/{{workflow.namespace}}/"
                    "{{workflow.name}}/{{workflow.creationTimestamp.Y}}/{{workflow."
                    "creationTimestamp.m}}/{{workflow.creationTimestamp.d}}/{{pod.name}}",
                    "accessKeySecret": {"name": "mlpipeline-minio-artifact", "key": "accesskey"},
                    "secretKeySecret": {"name": "mlpipeline-minio-artifact", "key": "secretkey"},
                },
            },
        },
        "artifactGCStatus": {"notSpecified": True},
    }
    istio = templates * len(',"sidecar.istio.io/inject":"false"')
    return {
        "metadata": glen(metadata) - len('"metadata":{"generateName":""}'),
        "spec": glen(spec_extra) + istio,
        "status": glen(status) + len('"status":{}'),
    }


def _load_payloads(run_root: Path | None) -> tuple[dict, str]:
    if run_root is None:
        return MEASURED_PAYLOADS, MEASURED_FROM or "none"
    return measure_payloads(Path(run_root)), str(run_root)


def estimate_runtime(
    spec: dict,
    platform: dict | None = None,
    run_root: Path | None = None,
    *,
    archive_size: int | None = 8,
    experts: int | None = 2,
    params: dict | None = None,
    retries: bool = True,
) -> dict:
    """Estimated bytes of the Workflow at the end of a successful run (JSON, uncompressed).

    The compiled size (:func:`estimate_compiled`) plus everything a run adds: one
    ``status.nodes`` entry per Argo node, built as Argo writes it (see :class:`_Runtime`;
    fixed fields with realistic names, ids, times, pod host, log artifact), and the metadata
    and status fields of :func:`_workflow_extras`. Generations are those unrolled in `spec`;
    the number of ParallelFor iterations follows from the list values (initial variants:
    ``4 x experts``; pairs: ``archive_size // 2``), which are the step outputs of the local
    run under `run_root` (:func:`measure_payloads`) or :data:`MEASURED_PAYLOADS`, their lists
    stretched to the configuration (:data:`LIST_LENGTHS`). Every task is assumed to run
    (no cache hits, no skipped conditions); Argo's templateDefaults retry (KFP manifests)
    wraps every node in a Retry node unless ``retries=False``.

    Also returned: ``stored_bytes``, the object Argo writes (above 1 MiB it replaces
    ``status.nodes`` by ``status.compressedNodes``, gzip + base64; workflow/packer), and
    ``with_uris_bytes`` / ``with_uris_stored_bytes``, the same run with every list or record
    parameter value shown to the steps as a URI (what passing Parquet URIs would leave).
    `run_root` is a kfp.local run directory (``.saemerge/runs/<run-id>``: its
    ``arguments.json`` gives the run parameters), `params` overrides run parameters.
    """
    compiled = estimate_compiled(spec, platform)
    replay = compile_replay(spec, platform)
    payloads, source = _load_payloads(run_root)
    values = _run_parameters(spec, run_root, archive_size, experts, params)

    def simulate(uris: bool) -> tuple[_Runtime, int, int, int, int]:
        """(the run, uncompressed bytes, nodes bytes, gzipped nodes bytes, bytes as Argo stores it)."""
        rt = _Runtime(spec, replay, payloads, values, retries=retries, uris=uris)
        rt.run()
        nodes_json = gojson(rt.nodes, normalize=False).encode()
        extras = _workflow_extras(replay, rt)
        total = compiled["bytes"] + sum(extras.values()) + len('"nodes":,') + len(nodes_json)
        # workflow/packer: above MAX_WORKFLOW_SIZE, status.nodes -> status.compressedNodes
        # (gzip at Go's default level 6, base64); if still above, the workflow errors.
        compressed = len(gzip.compress(nodes_json, 6)) * 4 // 3 + 4
        stored = total if total <= ARGO_COMPRESS_ABOVE else total - len(nodes_json) + compressed + 20
        return rt, total, len(nodes_json), compressed, stored

    rt, total, nodes_bytes, compressed, stored = simulate(False)
    _, with_uris, _, _, with_uris_stored = simulate(True)
    types: dict[str, int] = {}
    for node in rt.nodes.values():
        types[node["type"]] = types.get(node["type"], 0) + 1
    io = sum(glen(n.get("inputs", {}), False) + glen(n.get("outputs", {}), False) for n in rt.nodes.values())
    return {
        "bytes": total,
        "compiled_bytes": compiled["bytes"],
        "nodes_bytes": nodes_bytes,
        "node_io_bytes": io,
        "nodes": len(rt.nodes),
        "node_types": types,
        "container_tasks": rt.container_tasks,
        "stored_bytes": stored,
        "compressed_nodes_bytes": compressed,
        "with_uris_bytes": with_uris,
        "with_uris_stored_bytes": with_uris_stored,
        "parameters": {k: values[k] for k in ("archive_size", "experts") if k in values},
        "payloads_from": source,
        "retries": retries,
        "backend_commit": BACKEND_COMMIT,
        "argo_commit": ARGO_COMMIT,
    }


# --------------------------------------------------------------------------- report


def _share(n: int, limit: int) -> float:
    return round(n / limit, 3)


def report(
    spec: dict, platform: dict | None = None, run_root: Path | None = None, limit: int = ETCD_LIMIT, **runtime: Any
) -> dict:
    """Compiled and end-of-run Workflow sizes, their share of `limit`, and a one-line summary.

    `runtime` goes to :func:`estimate_runtime` (``archive_size``, ``experts``, ``params``,
    ``retries``).
    """
    compiled = estimate_compiled(spec, platform)
    run = estimate_runtime(spec, platform, run_root, **runtime)
    generations = sum(
        1
        for t in spec["root"]["dag"].get("tasks", {}).values()
        if "dag" in spec["components"].get(t["componentRef"]["name"], {}) and "parameterIterator" not in t
    )
    line = (
        f"Argo Workflow (KFP backend {BACKEND_COMMIT[:7]}): compiled ~{compiled['bytes'] / 1e3:.0f} KB "
        f"({_share(compiled['bytes'], limit):.0%} of {limit / 1e6:.1f} MB); end of run ~{run['bytes'] / 1e6:.1f} MB "
        f"uncompressed ({_share(run['bytes'], limit):.0%}, {run['nodes']} nodes), "
        f"~{run['stored_bytes'] / 1e3:.0f} KB as Argo stores it"
        + (" (nodes gzipped)" if run["stored_bytes"] < run["bytes"] else "")
    )
    return {
        "compiled_bytes": compiled["bytes"],
        "compiled_share": _share(compiled["bytes"], limit),
        "runtime_bytes": run["bytes"],
        "runtime_share": _share(run["bytes"], limit),
        "stored_bytes": run["stored_bytes"],
        "stored_share": _share(run["stored_bytes"], limit),
        "argo_max_workflow_size": ARGO_COMPRESS_ABOVE,
        "limit": limit,
        "nested_dags": generations,
        "compiled": compiled,
        "runtime": run,
        "backend_commit": BACKEND_COMMIT,
        "argo_commit": ARGO_COMMIT,
        "text": line,
    }


# --------------------------------------------------------------------------- refit


def _git_show(repo: Path, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"HEAD:{path}"], check=True, capture_output=True, text=True
    ).stdout


def _list_files(repo: Path, folder: str) -> tuple[list[str], Any]:
    """Files under `folder` of a checkout, or of a bare clone's HEAD; and a reader for them."""
    if (repo / folder).is_dir():
        return sorted(str(p.relative_to(repo)) for p in (repo / folder).rglob("*") if p.is_file()), lambda path: (
            repo / path
        ).read_text()
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD", folder],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return sorted(out), lambda path: _git_show(repo, path)


def test_data_pairs(repo: Path) -> list[tuple[str, dict, dict | None, dict]]:
    """(name, spec, platform spec, compiled Workflow) for each compiler test pair of a KFP checkout.

    Pairs are matched by file name: ``test_data/sdk_compiled_pipelines/**/X.yaml`` with
    ``test_data/compiled-workflows/X.yaml`` (backend/test/compiler/argo_ginkgo_test.go).
    """
    import yaml

    repo = Path(repo)
    specs, read_spec = _list_files(repo, "test_data/sdk_compiled_pipelines")
    by_name: dict[str, str] = {}
    for path in specs:
        if path.endswith(".yaml"):
            by_name.setdefault(Path(path).name, path)
    workflows, read_wf = _list_files(repo, "test_data/compiled-workflows")
    pairs = []
    for path in workflows:
        name = Path(path).name
        if name not in by_name:
            continue
        docs = [d for d in yaml.safe_load_all(read_spec(by_name[name])) if d]
        pairs.append((name, docs[0], docs[1] if len(docs) > 1 else None, yaml.safe_load(read_wf(path))))
    return pairs


def _lstsq(rows: list[list[float]], target: list[float]) -> list[float]:
    import numpy as np

    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(target, dtype=float), rcond=None)
    return [float(c) for c in coef]


def _errors(rows, target, coef, names) -> dict:
    rel = [abs(sum(c * x for c, x in zip(coef, row)) - y) / y for row, y in zip(rows, target)]
    worst = max(range(len(rel)), key=rel.__getitem__)
    return {
        "pairs": len(rel),
        "mean_rel_error": round(sum(rel) / len(rel), 5),
        "max_rel_error": round(rel[worst], 5),
        "worst": names[worst],
    }


def refit(repo: Path, holdout_every: int = 5) -> dict:
    """Fit :data:`COMPILED_COEFFICIENTS` on a KFP checkout's compiler test data.

    Least squares of the compiled Workflow's JSON bytes on :func:`compiled_features`; the
    errors on all pairs, and on every `holdout_every`-th pair (by name) when fitted on the
    others.
    """
    pairs = test_data_pairs(Path(repo))
    order = _fit_order()
    names, rows, target = [], [], []
    for name, spec, platform, wf in pairs:
        feats = compiled_features(spec, platform)
        names.append(name)
        rows.append([feats[k] for k in order])
        target.append(float(glen(wf)))
    coef = _lstsq(rows, target)
    test = [i for i in range(len(names)) if i % holdout_every == 0]
    train = [i for i in range(len(names)) if i % holdout_every != 0]
    held_coef = _lstsq([rows[i] for i in train], [target[i] for i in train])
    held = _errors([rows[i] for i in test], [target[i] for i in test], held_coef, [names[i] for i in test])
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "commit": commit,
        "coefficients": {k: round(c, 4) for k, c in zip(order, coef)},
        "fit": {**_errors(rows, target, coef, names), "holdout": {"train_pairs": len(train), **held}},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m saemerge.pipeline.workflow_size", description=__doc__.split("\n")[0])
    ap.add_argument("pipeline", nargs="?", help="compiled pipeline YAML (spec + platform spec): print its report")
    ap.add_argument("--refit", metavar="KFP_REPO", help="fit the compiled-size model on this kubeflow/pipelines repo")
    ap.add_argument("--measure", metavar="RUN_DIR", help="print the payload profile of a kfp.local run")
    ap.add_argument("--run-root", help="measure payloads from this local run instead of the built-in profile")
    ap.add_argument("--archive-size", type=int, default=8)
    ap.add_argument("--experts", type=int, default=2)
    args = ap.parse_args(argv)
    if args.refit:
        print(json.dumps(refit(Path(args.refit)), indent=2))
    if args.measure:
        run = Path(args.measure)
        profile = measure_payloads(run)
        arguments = run / "arguments.json"
        if arguments.is_file():
            profile["__arguments__"] = json.loads(arguments.read_text())
        print(json.dumps(profile, sort_keys=True))
    if args.pipeline:
        import yaml

        docs = [d for d in yaml.safe_load_all(Path(args.pipeline).read_text()) if d]
        rep = report(
            docs[0],
            docs[1] if len(docs) > 1 else None,
            args.run_root,
            archive_size=args.archive_size,
            experts=args.experts,
        )
        print(rep["text"])
        print(json.dumps({k: v for k, v in rep.items() if k not in ("compiled", "runtime", "text")}, indent=2))
    if not (args.refit or args.measure or args.pipeline):
        ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
