"""The Workflow at the end of a run: node statuses as Argo's controller writes them, and how Argo stores them."""

from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path
from typing import Any

from saemerge.pipeline.workflow_size.compiler import (
    Compiled,
    _param,
    _pod_metadata_params,
    _retry_params,
    compile_replay,
    estimate_compiled,
)
from saemerge.pipeline.workflow_size.gojson import glen, gojson
from saemerge.pipeline.workflow_size.limits import ARGO_COMMIT, ARGO_COMPRESS_ABOVE, BACKEND_COMMIT
from saemerge.pipeline.workflow_size.payloads import (
    _TYPE_DEFAULTS,
    MEASURED_FROM,
    MEASURED_PAYLOADS,
    _step_outputs,
    measure_payloads,
)


def _fnv32a(text: str) -> int:
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


# Share of the tasks with a retry policy that fail once and are retried, in the end-of-run
# estimate: an allowance for preempted GPU nodes, lost pods and S3 hiccups over a long run.
FAILURE_SHARE = 0.05
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
        failure_share: float = 0.0,
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
        self.failure_share = failure_share
        self.retried_tasks = 0  # container tasks with a retry policy (set_retry)
        self.failed_attempts = 0
        self.failed: list[tuple[str, str]] = []

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
        failures: int = 0,
    ) -> tuple[str, str]:
        """A template execution: the node, wrapped in a Retry node when templates retry.

        `failures` failed attempts come first (``name(0)``, ...; their ids and names are left in
        ``self.failed`` for the caller to fill, as the successful attempt's are returned)."""
        self.failed = []
        if not self.retries:
            return self._new(name, typ, template, boundary, parent, inputs, outputs, pod, gpu), name
        retry = self._new(name, "Retry", template, boundary, parent, inputs, copy.deepcopy(outputs) if pod else None)
        for k in range(failures):
            failed = self._new(f"{name}({k})", typ, template, boundary, retry, inputs, None, pod, gpu, retried=True)
            self._fail(failed)
            self.failed.append((failed, f"{name}({k})"))
        name_ok = f"{name}({failures})"
        attempt = self._new(name_ok, typ, template, boundary, retry, inputs, outputs, pod, gpu, retried=True)
        if pod:  # the retry node's outputs are the attempt's, log artifact included
            self.nodes[retry]["outputs"] = copy.deepcopy(self.nodes[attempt]["outputs"])
        if typ == "DAG":
            self.nodes[retry]["outboundNodes"] = [attempt]
        return attempt, name_ok

    def _fail(self, nid: str) -> None:
        """A failed attempt as Argo leaves it: phase, message, a pod's exit code."""
        node = self.nodes[nid]
        node["phase"] = "Failed"
        node["message"] = "Error (exit code 1)"
        node["progress"] = "0/1"
        if "outputs" in node:
            node["outputs"]["exitCode"] = "1"

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
            failures=self._failures(task),
        )
        impl_variant = variant.replace("system-container-executor", "system-container-impl")
        for failed, failed_name in list(self.failed):  # a failed attempt: its executor DAG and launcher pod
            pod, _ = self._exec(
                f"{failed_name}.executor",
                impl_variant,
                "Pod",
                failed,
                failed,
                [_param("pod-spec-patch", patch), *extra],
                pod=True,
                gpu=gpu,
            )
            self._fail(pod)
            self.nodes[failed]["outboundNodes"] = [pod]
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

    def _failures(self, task: dict) -> int:
        """Failed attempts of this task: one for every 1/failure_share tasks with a retry policy,
        spread evenly over the run (KFP's set_retry retries the executor DAG: a new attempt of it
        and of its launcher pod, with the same inputs)."""
        if not task.get("retryPolicy") or not self.retries:
            return 0
        before = int(self.retried_tasks * self.failure_share)
        self.retried_tasks += 1
        fails = int(self.retried_tasks * self.failure_share) - before
        self.failed_attempts += fails
        return fails

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
        # driver.go getPodResource: the resource* string (kfp >= 2.x writes both) before the old
        # float field, which is formatted "%vG" (memory) or "%v" (CPU); a Quantity keeps its form.
        for field_, target, key, unit in (
            ("memoryLimit", limits, "memory", "G"),
            ("memoryRequest", requests, "memory", "G"),
            ("cpuLimit", limits, "cpu", ""),
            ("cpuRequest", requests, "cpu", ""),
        ):
            new_field = "resource" + field_[0].upper() + field_[1:]
            if res.get(new_field):
                target[key] = str(res[new_field])
            elif res.get(field_):
                target[key] = f"{res[field_]}{unit}"
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
                                "name": _secret_name(secret),
                                "key": kv["secretKey"],
                                "optional": bool(secret.get("optional")),
                            }
                        },
                    }
                )
        config = k8s or {}
        for field in config.get("fieldPathAsEnv", []):  # k8s.go: after the secrets' env
            env.append({"name": field["name"], "valueFrom": {"fieldRef": {"fieldPath": field["fieldPath"]}}})
        if env:
            main["env"] = env
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
        for secret in config.get("secretAsVolume", []):
            volume, mount = secret_volume(secret)
            pod.setdefault("volumes", []).append(volume)
            main.setdefault("volumeMounts", []).append(mount)
        for empty in config.get("emptyDirMounts", []):  # k8s.go: EmptyDirMounts (medium omitted when "")
            source = {k: empty[k] for k in ("medium", "sizeLimit") if empty.get(k)}
            pod.setdefault("volumes", []).append({"name": empty["volumeName"], "emptyDir": source})
            main.setdefault("volumeMounts", []).append({"name": empty["volumeName"], "mountPath": empty["mountPath"]})
        return gojson(pod)


def secret_volume(secret: dict) -> tuple[dict, dict]:
    """A secretAsVolume as the driver patches it into the pod (backend/src/v2/driver/k8s.go,
    extendPodSpecPatch, tags 2.5.0 (driver.go) to 2.17.0): a volume named by the secret, whose
    ``optional`` is always written (a *bool), and its mount on the user container."""
    name = _secret_name(secret)
    volume = {"name": name, "secret": {"secretName": name, "optional": bool(secret.get("optional"))}}
    return volume, {"name": name, "mountPath": secret.get("mountPath", "")}


def _secret_name(secret: dict) -> str:
    """A secret mount's name: the constant of its secretNameParameter (kfp-kubernetes >= 1.4
    writes both), else its secretName."""
    constant = ((secret.get("secretNameParameter") or {}).get("runtimeValue") or {}).get("constant")
    return constant or secret.get("secretName", "")


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
        "task_results": task_results_bytes(rt.nodes),
    }


def task_results_bytes(nodes: dict) -> int:
    """``status.taskResultsCompletionStatus``: one ``"<pod node id>":true`` per pod node.

    Argo up to 3.6 (KFP 2.14's manifests ship v3.6.7) records there whether each pod's task
    result has reached the controller (``MarkTaskResultComplete`` in
    pkg/apis/workflow/v1alpha1/workflow_types.go), and keeps the map to the end of the run;
    3.7 and later write ``taskResultSynced`` into the node instead (modelled on the nodes). The
    map is outside ``status.nodes``, so Argo never gzips it: it counts in full in what is stored.
    Both are counted, an upper bound over the Argo versions KFP 2.14 and newer ship.
    """
    pods = [nid for nid, node in nodes.items() if "hostNodeName" in node]
    if not pods:
        return 0
    return len('"taskResultsCompletionStatus":{},') + sum(len(f'"{nid}":true,') for nid in pods) - 1


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
    failure_share: float = FAILURE_SHARE,
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
    wraps every node in a Retry node unless ``retries=False``. Of the tasks with a retry policy
    (``set_retry``: prune, merge, evaluate and the small S3 steps), ``failure_share`` fail once
    and are retried (:data:`FAILURE_SHARE`, one in 20, spread over the run): each failure adds
    an attempt of the executor DAG and of its launcher pod with the same inputs. Besides the
    nodes, ``status.taskResultsCompletionStatus`` (:func:`task_results_bytes`) is counted.

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
        rt = _Runtime(spec, replay, payloads, values, retries=retries, uris=uris, failure_share=failure_share)
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
        "retried_tasks": rt.retried_tasks,
        "failed_attempts": rt.failed_attempts,
        "task_results_bytes": task_results_bytes(rt.nodes),
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
