"""The compiled Workflow: a replay of the KFP backend's argocompiler, and the fitted estimate of its size."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from saemerge.pipeline.workflow_size.gojson import glen, gojson
from saemerge.pipeline.workflow_size.limits import BACKEND_COMMIT, COMPILED_COEFFICIENTS, COMPILED_FIT

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
