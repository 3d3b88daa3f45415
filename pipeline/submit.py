"""Submit a search's pipeline (SAE, PSO or M2N2: :mod:`saemerge.pipeline.searches`) to a Kubeflow
Pipelines 2.x cluster with ``kfp.Client``.

One call does what CI needs: compile (compile options fixed here), upload the pipeline or a
new version of it, find or create the experiment, start a run or a recurring run, and
optionally follow the run until it ends::

    req = SubmitRequest(host="https://kfp.example.com/pipeline", params={"run_uri": "s3://..."}, wait=True)
    result = submit(req)          # SubmitResult; result.state is the final run state

Before anything is uploaded, the server's version (healthz ``tag_name``) is checked against
the pipeline's floor (:mod:`saemerge.pipeline.backend`: 2.14). Every failed API call is one
line (:class:`KfpApiError`), never a traceback.

Versions are content-addressed: the version name carries the SHA-256 of the compiled YAML,
so submitting an unchanged pipeline reuses its version instead of piling up copies (a new
pipeline is created empty and then given its first version under that name). Caching is part
of the version too: KFP's step cache is compiled off in every task
(:func:`saemerge.pipeline.compile.set_caching`; why: ``CompileOptions.caching``). On a
multi-user cluster the pipeline lives in the user's namespace (a namespaced pipeline: KFP
2.x), found and uploaded there; a single-user cluster has shared pipelines only.
Credentials: a bearer token (``token``, never logged) or, without one, what ``kfp.Client``
finds itself (kube config context through the API server proxy, or in-cluster credentials).

Each run writes under its own ``run_uri``. Without one, it is ``RUN_ROOT/{{workflow.uid}}``:
the KFP API server replaces ``{{workflow.uid}}`` anywhere in a run's compiled workflow,
runtime parameters included, with the run's id (``ReplaceUID`` in
``backend/src/apiserver/template/v2_template.go``, since KFP 2.0), and the scheduled-workflow
controller does the same for every run a recurring run starts (``NewWorkflow`` in
``backend/src/crd/controller/scheduledworkflow/util/scheduled_workflow.go``). kfp's
``dsl.PIPELINE_JOB_ID_PLACEHOLDER`` (``{{$.pipeline_job_uuid}}``) does not serve here: the
driver substitutes it only as a whole task input written into the pipeline at compile time
(``backend/src/v2/driver/resolve.go``), not inside a run parameter, and ``[[RunUUID]]`` only
in standalone runs on backends 2.16 and newer. A recurring run with a fixed ``run_uri``
would write (and resume, and hit KFP's cache for) every firing in one prefix: refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from saemerge.config import RunConfig, parse_param_args  # noqa: F401 -- parse_param_args re-exported (old path)
from saemerge.errors import SaeMergeError, unknown_name
from saemerge.pipeline.backend import check_backend
from saemerge.pipeline.common import CompileOptions, default_images_notice
from saemerge.pipeline.searches import get_search
from saemerge.progress import RunProgress

log = logging.getLogger(__name__)

SUCCEEDED = "SUCCEEDED"
FAILED_STATES = {"FAILED", "CANCELED", "SKIPPED"}
TERMINAL_STATES = FAILED_STATES | {SUCCEEDED}
# Non-final states that need a word while --wait keeps polling (V2beta1RuntimeState).
WAITING_HINTS = {
    "PAUSED": "paused (resume it in the Kubeflow UI or with kfp.Client; --timeout still applies)",
    "CANCELING": "being canceled",
}
RUN_ID_PLACEHOLDER = "{{workflow.uid}}"
DEFAULT_RUN_ROOT = "s3://saemerge/runs"
# Consecutive polling errors (restarts of the API server, expired proxies) tolerated while waiting.
MAX_POLL_ERRORS = 5
# --wait reports a task (a pod) that has not started after this long, with the reason where it can.
PENDING_REPORT_S = 180.0


@dataclass
class SubmitRequest:
    """What to submit, where, and how to follow it (see ``saemerge submit --help``)."""

    host: str | None = None
    token: str | None = None
    kube_context: str | None = None
    namespace: str | None = None
    experiment: str = "saemerge"
    run_name: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    wait: bool = False
    timeout: float | None = None
    poll_interval: float = 30.0
    service_account: str | None = None
    pipeline_root: str | None = None
    enable_caching: bool | None = None
    options: CompileOptions = field(default_factory=CompileOptions)
    dry_run: bool = False
    run_root: str = DEFAULT_RUN_ROOT  # run_uri = RUN_ROOT/<run id> when params has none
    kfp_version: str | None = None  # the backend's version as the user asserts it (--kfp-version)
    kfp_namespace: str = "kubeflow"  # where KFP is installed (its ml-pipeline Deployment)


@dataclass
class SubmitResult:
    pipeline_id: str | None = None
    version_id: str | None = None
    version_name: str = ""
    version_uploaded: bool = False
    experiment_id: str | None = None
    run_id: str | None = None
    recurring_run_id: str | None = None
    run_url: str | None = None
    state: str | None = None
    compiled_bytes: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False  # --wait gave up (--timeout) while the run went on

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------- parameters


def pipeline_parameters(spec: dict) -> dict[str, dict]:
    """The root parameters of a compiled pipeline spec: name → {parameterType, defaultValue?, ...}."""
    return dict(spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))


def _typed(name: str, text: Any, ptype: str) -> Any:
    """Convert a --param value to the parameter's IR type; non-strings pass through checked."""

    def fail(expect: str) -> SaeMergeError:
        return SaeMergeError(f"--param {name}={text!r}: pipeline parameter {name} takes {expect}")

    value = text
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
    if ptype == "STRING":
        # k=abc and k='"abc"' both mean the string abc; k=123 means the string "123"
        if isinstance(value, str):
            return value
        if isinstance(text, str):
            return text
        raise fail("a string")
    if ptype == "NUMBER_INTEGER":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if ptype == "NUMBER_DOUBLE":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if ptype == "BOOLEAN":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if ptype == "LIST":
        if not isinstance(value, list):
            raise fail('a JSON list, e.g. ["a","b"]')
        return value
    if ptype == "STRUCT":
        if not isinstance(value, dict):
            raise fail('a JSON object, e.g. {"k": 1}')
        return value
    return value


def coerce_params(raw: dict[str, Any], spec: dict) -> dict[str, Any]:
    """Check `raw` against the pipeline's parameters and convert each value to its type.

    Raises:
        SaeMergeError: an unknown name (closest names suggested), a value of the wrong type,
            or a required parameter (no default) that is missing.
    """
    known = pipeline_parameters(spec)
    typed = {}
    for name, value in raw.items():
        if name not in known:
            raise unknown_name("pipeline parameter", name, known)
        typed[name] = _typed(name, value, known[name].get("parameterType", "STRING"))
    missing = [n for n, p in known.items() if n not in typed and "defaultValue" not in p and not p.get("isOptional")]
    if missing:
        raise SaeMergeError(f"missing pipeline parameter(s) {', '.join(missing)}: give each as --param NAME=VALUE")
    return typed


def resume_uri(run: str, run_root: str) -> str:
    """The run URI ``--resume RUN`` names: RUN itself (``s3://...``), or RUN_ROOT/RUN for a run id
    (a run submitted without run_uri writes under RUN_ROOT/<KFP run id>)."""
    from saemerge import runlog

    if "://" in run or run.startswith("/"):
        return run.rstrip("/")
    runlog.check_run_id(run, "--resume")
    return f"{run_root.rstrip('/')}/{run}"


def resumed_request(run: str, run_root: str, given: dict[str, Any]) -> tuple[RunConfig, dict[str, Any]]:
    """The recorded configuration of the run ``--resume RUN`` names and its pipeline arguments.

    A resumed run is the same run submitted again onto its own ``run_uri``: the search, the
    steps and every parameter come from its ``run.json`` (so the init step finds the same
    configuration and every finished model, score and generation is read back, not redone).

    Args:
        given: the flags given beside ``--resume`` (``--search``, ``--steps``, ``--param NAME``
            -> raw text); each must agree with the record.

    Raises:
        SaeMergeError: no S3 settings here, no run.json at the URI, or a flag that disagrees.
    """
    from saemerge import storage
    from saemerge.config import typed
    from saemerge.runlog import RunLayout

    uri = resume_uri(run, run_root)
    layout = RunLayout(uri)
    configured = any(os.environ.get(v) for v in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"))
    if storage.parse_uri(uri).is_s3 and not configured:
        raise SaeMergeError(
            f"--resume {run}: reading {layout.run_json} needs S3 settings here (AWS_ENDPOINT_URL, "
            "AWS_ACCESS_KEY_ID or AWS_PROFILE)"
        )
    if not storage.exists(layout.run_json):
        raise SaeMergeError(f"--resume {run}: no run at {uri} (no run.json; check --run-root or give the run's URI)")
    config = RunConfig.from_json(layout.read_config())
    if config.run_uri.rstrip("/") != uri:
        raise SaeMergeError(f"--resume {run}: {layout.run_json} records another run_uri, {config.run_uri}")
    for flag, value in given.items():
        if flag.startswith("--param "):
            name = flag.removeprefix("--param ")
            try:
                parsed = json.loads(value) if isinstance(value, str) else value
            except json.JSONDecodeError:
                parsed = value
            if name not in config.pipeline_arguments():
                raise SaeMergeError(f"--param {name}: not a parameter of run {uri}'s pipeline ({config.search})")
            now, was = typed(label=lambda n: f"--param {n}", **{name: parsed})[name], getattr(config, name)
        else:
            now, was = value, getattr(config, flag.removeprefix("--"))
        if now != was:
            raise SaeMergeError(
                f"{flag} {value}: run {uri} was started with {json.dumps(was) if not isinstance(was, str) else was} "
                f"({layout.run_json}); leave the flag out to resume it with its recorded settings"
            )
    return config, config.pipeline_arguments()


def normalize_cron(expr: str) -> str:
    """KFP's scheduler wants 6 fields (seconds first); accept the usual 5-field form too."""
    fields = expr.split()
    if len(fields) == 5:
        return " ".join(["0", *fields])
    if len(fields) == 6:
        return " ".join(fields)
    raise SaeMergeError(f"--schedule {expr!r}: expected a cron expression of 5 fields (or 6 with seconds)")


# ------------------------------------------------------------------------------- the client


def version_name_for(pipeline_name: str, compiled: bytes) -> str:
    from saemerge import __version__

    return f"{pipeline_name}-{__version__}-{hashlib.sha256(compiled).hexdigest()[:12]}"


def _eq_filter(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


def default_run_uri(params: dict[str, Any], run_root: str, schedule: str | None) -> str | None:
    """Give `params` its run_uri when it has none (RUN_ROOT/{{workflow.uid}}); return the one added.

    Raises:
        SaeMergeError: a recurring run with a run_uri that names no run id.
    """
    if "run_uri" not in params:
        params["run_uri"] = f"{run_root.rstrip('/')}/{RUN_ID_PLACEHOLDER}"
        return params["run_uri"]
    if schedule and RUN_ID_PLACEHOLDER not in str(params["run_uri"]):
        raise SaeMergeError(
            f"--param run_uri={params['run_uri']}: a recurring run would write every run into this one prefix "
            f"(and find the first run's work there); leave run_uri out (each run gets {run_root}/<run id>) "
            f"or put {RUN_ID_PLACEHOLDER} in it"
        )
    return None


class KfpApiError(SaeMergeError):
    """The KFP API refused or failed a call (an HTTP error, or no answer): exit code 4.

    ``result`` is what was done before the call failed (a run may already exist)."""

    exit_code = 4

    def __init__(self, message: str, status: int | None = None, result: SubmitResult | None = None):
        super().__init__(message)
        self.status = status
        self.result = result


class BackendTooOld(SaeMergeError):
    """The KFP backend is older than the pipeline's floor (:mod:`saemerge.pipeline.backend`): exit code 5."""

    exit_code = 5


def _server_message(body: Any) -> str:
    """The first line of the error a KFP API server put in its answer (grpc-gateway JSON), if any."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        data = json.loads(text)
        text = str(data.get("message") or data.get("error") or "") if isinstance(data, dict) else text
    except json.JSONDecodeError:
        pass
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200] + ("..." if len(line) > 200 else "")


@contextlib.contextmanager
def api_call(what: str, where: str, result: SubmitResult | None = None, *, connecting: bool = False):
    """Turn what a kfp.Client call raises into one line: :class:`KfpApiError` (exit code 4).

    ApiException is an HTTP answer; urllib3's errors and OSError are a failed connection.
    While `connecting` (making the client: kube config, proxies, TLS), any exception is. The
    message names the call, the server, the HTTP status and the server's own error line, never
    a credential.
    """
    import kfp_server_api
    import urllib3

    unreachable: tuple[type[BaseException], ...] = (
        (Exception,) if connecting else (OSError, urllib3.exceptions.HTTPError)
    )
    try:
        yield
    except SaeMergeError:
        raise
    except kfp_server_api.ApiException as exc:
        hint = " (check the token: --token or KFP_TOKEN)" if exc.status in (401, 403) else ""
        said = _server_message(exc.body)
        raise KfpApiError(
            f"KFP API at {where}: {what}: HTTP {exc.status} {exc.reason}{': ' + said if said else ''}{hint}",
            exc.status,
            result,
        ) from None
    except unreachable as exc:
        raise KfpApiError(
            f"KFP API at {where}: {what}: cannot reach it: {type(exc).__name__}: {str(exc)[:200]}", None, result
        ) from None


def read_healthz(client) -> dict:
    """The API server's healthz answer as sent: ``tag_name`` (its version), ``commit_sha``,
    ``multi_user``. kfp's model of the answer keeps only ``multi_user``, so the body is read raw
    through the client's public generated API (``client.healthzs``)."""
    response = client.healthzs.healthz_service_get_healthz(_preload_content=False)
    data = json.loads(response.data or b"{}")
    return data if isinstance(data, dict) else {}


def connect(req: SubmitRequest, out: Callable[[str], None] = print, kube: Any = None) -> tuple[Any, bool]:
    """A ``kfp.Client`` for `req`, checked with one healthz call (no silent 25 s retry loop),
    and whether the cluster is multi-user.

    Raises:
        KfpApiError: the API cannot be reached or refuses (a bad token).
        BackendTooOld: the server's version is below the pipeline's floor.
    """
    import kfp

    class _Client(kfp.Client):
        # kfp.Client's constructor may ask healthz, retrying 5 times 5 s apart even on 401; once is enough.
        def get_kfp_healthz(self, sleep_duration: int = 5):
            return self.healthzs.healthz_service_get_healthz()

    where = req.host or "the current kube context"
    kwargs: dict[str, Any] = {"host": req.host, "existing_token": req.token or None, "kube_context": req.kube_context}
    if req.host and req.namespace:
        kwargs["namespace"] = req.namespace  # with an explicit host this only sets the user namespace
    with api_call("healthz", where, connecting=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            client = _Client(**kwargs)
        health = read_healthz(client)
    from saemerge.pipeline.backend import parse_backend_version
    from saemerge.pipeline.kube import kfp_images

    tag = health.get("tag_name")
    images = None
    if parse_backend_version(tag) is None and kube is not None:  # healthz cannot say (before 2.16)
        images = kfp_images(kube, req.kfp_namespace)
    try:
        warning = check_backend(tag, where, images=images, asserted=req.kfp_version)
    except SaeMergeError as exc:
        raise (BackendTooOld(str(exc)) if "is version" in str(exc) else exc) from None
    if warning:
        out(f"warning: {warning}")
    multi_user = bool(health.get("multi_user", False))
    if multi_user and not req.namespace:
        raise SaeMergeError(f"KFP at {where} is multi-user: give --namespace (your Kubeflow profile namespace)")
    return client, multi_user


def preflight(kube: Any, req: SubmitRequest, options: CompileOptions, namespace: str) -> list[str]:
    """With a kube context: what would keep the run's pods from starting. Refuses a missing S3
    secret (every pod mounts it, ``optional=False``: they would wait in ContainerCreating);
    returns a warning line when no node advertises the accelerator the GPU steps request (a
    GPU node pool scaled to zero advertises none until the autoscaler adds a node).

    Raises:
        SaeMergeError: the secret does not exist in `namespace` (one line naming it).
    """
    from saemerge.pipeline.kube import nodes_with, secret_exists

    warnings_ = []
    if secret_exists(kube, namespace, options.s3_secret) is False:
        raise SaeMergeError(
            f"--s3-secret {options.s3_secret}: no such secret in namespace {namespace}; every step mounts it, so "
            f"its pods would wait in ContainerCreating (create it: manifests/, or name another with --s3-secret)"
        )
    gpus = nodes_with(kube, options.gpu_resource)
    if gpus == []:
        warnings_.append(
            f"warning: no node advertises {options.gpu_resource}, which the evaluate steps request: their pods stay "
            "Pending until one does (install the device plugin, scale up a GPU pool, or give --gpu-resource)"
        )
    return warnings_


class PendingWatch:
    """For ``--wait``: the run's pods that have waited longer than :data:`PENDING_REPORT_S` to
    start, each reported once (again when its reason changes), with the pod's reason read
    through the Kubernetes API (:func:`saemerge.pipeline.kube.waiting_pods`)."""

    def __init__(self, kube: Any, namespace: str, after: float | None = None):
        self.kube, self.namespace = kube, namespace
        self.after = PENDING_REPORT_S if after is None else after
        self.said: dict[str, str] = {}

    def poll(self, run_id: str) -> list[str]:
        from saemerge.pipeline.kube import waiting_pods

        lines = []
        for pod in waiting_pods(self.kube, self.namespace, run_id) or []:
            if pod.seconds >= self.after and self.said.get(pod.name) != pod.reason:
                self.said[pod.name] = pod.reason
                lines.append(f"  task {pod.task}: pod {pod.name} pending for {pod.seconds / 60:.0f} min: {pod.reason}")
        return lines


def find_pipeline(client, name: str, namespace: str | None) -> str | None:
    """The id of the pipeline called `name` (in `namespace`: a namespaced pipeline), or None."""
    found = client.list_pipelines(filter=_eq_filter("display_name", name), namespace=namespace, page_size=2)
    pipelines = found.pipelines or []
    if len(pipelines) > 1:
        raise SaeMergeError(
            f"two pipelines are called {name}{f' in namespace {namespace}' if namespace else ''}; "
            "delete one (names must be unique)"
        )
    return pipelines[0].pipeline_id if pipelines else None


def ensure_version(
    client, package: Path, version_name: str, search: str = "sae", namespace: str | None = None
) -> tuple[str, str, bool]:
    """(pipeline_id, version_id, uploaded): the version named `version_name` of the search's
    pipeline, uploaded unless it is there.

    A new pipeline is created empty (``CreatePipeline``) and then given the version: uploading
    the package as a new pipeline would name its first version after the pipeline (the API
    server's ``UploadPipeline``), and the next unchanged submit, looking for the content-named
    version, would upload a duplicate.

    Args:
        namespace: the user's namespace on a multi-user cluster (the pipeline is found and
            created there), None for a shared pipeline.
    """
    import kfp_server_api

    spec = get_search(search)
    pipeline_id = find_pipeline(client, spec.pipeline_name, namespace)
    if pipeline_id is None:
        body = kfp_server_api.V2beta1Pipeline(
            display_name=spec.pipeline_name, name=spec.pipeline_name, description=spec.summary, namespace=namespace
        )
        pipeline_id = client.pipelines.pipeline_service_create_pipeline(body).pipeline_id
    else:
        found = client.list_pipeline_versions(pipeline_id, page_size=1, filter=_eq_filter("display_name", version_name))
        if found.pipeline_versions:
            return pipeline_id, found.pipeline_versions[0].pipeline_version_id, False
    version = client.upload_pipeline_version(
        str(package), version_name, pipeline_id=pipeline_id, description="saemerge submit"
    )
    return pipeline_id, version.pipeline_version_id, True


def wait_for_run(
    client,
    run_id: str,
    *,
    poll_interval: float,
    timeout: float | None,
    out: Callable[[str], None] = print,
    progress: RunProgress | None = None,
    pending: PendingWatch | None = None,
    pending_after: float | None = None,
) -> str:
    """Poll the run until it ends, printing its and its tasks' state changes and, with
    `progress`, what the run's own records say it has done; return the final state.

    KFP's task list of a long run goes empty partway through (Argo compresses the Workflow's
    nodes and the API server reads only uncompressed ones: :mod:`saemerge.progress`), so the
    generations come from the run's records, which have no such limit.
    """
    import kfp_server_api
    import urllib3

    start = time.monotonic()
    last_state, task_states, errors, tasks_gone = None, {}, 0, False
    pending_since: dict[str, float] = {}  # without a kube context: tasks KFP shows as PENDING
    pending_after = PENDING_REPORT_S if pending_after is None else pending_after
    while True:
        try:
            run = client.get_run(run_id)
            errors = 0
        except (kfp_server_api.ApiException, OSError, urllib3.exceptions.HTTPError) as exc:  # a dropped connection too
            status = getattr(exc, "status", None)
            if status in (401, 403, 404) or errors >= MAX_POLL_ERRORS:
                raise KfpApiError(
                    f"run {run_id}: polling failed: {type(exc).__name__} {status or exc}", status
                ) from None
            errors += 1
            log.warning("polling run %s failed (%s); retrying", run_id, status or exc)
        else:
            state = str(run.state or "RUNTIME_STATE_UNSPECIFIED")
            tasks = (run.run_details.task_details or []) if run.run_details else []
            for task in tasks:
                name, tstate = task.display_name or task.task_id, str(task.state)
                if task_states.get(name) != tstate:
                    task_states[name] = tstate
                    out(f"  task {name}: {tstate}")
                if tstate != "PENDING":
                    pending_since.pop(name, None)
                elif pending is None and time.monotonic() - pending_since.setdefault(name, time.monotonic()) >= (
                    pending_after
                ):
                    waited = time.monotonic() - pending_since[name]
                    pending_since[name] = float("inf")  # said once
                    out(
                        f"  task {name}: pending for {waited / 60:.0f} min (no kube context here to read the pod's reason)"
                    )
            for line in pending.poll(run_id) if pending is not None else []:
                out(line)
            if task_states and not tasks and not tasks_gone and state not in TERMINAL_STATES:
                tasks_gone = True
                out(
                    f"run {run_id}: KFP's task list is empty now (Argo compressed the run's nodes); "
                    + ("progress continues from the run's records" if progress else "no task states from here on")
                )
            if state != last_state:
                hint = WAITING_HINTS.get(state)
                out(f"run {run_id}: {state}" + (f": {hint}" if hint else ""))
                last_state = state
            for line in progress.poll() if progress else []:
                out(line)
            if state in TERMINAL_STATES:
                if state != SUCCEEDED and run.error is not None and run.error.message:
                    out(f"run {run_id}: error: {run.error.message}")
                return state
        if timeout is not None and time.monotonic() - start > timeout:
            raise TimeoutError(f"run {run_id} is still {last_state} after {timeout:g} s")
        time.sleep(poll_interval)


def run_progress(run_uri: str, generations: int | None, out: Callable[[str], None]) -> RunProgress | None:
    """A reader of the run's records for ``--wait``, or None (said once) without S3 settings here."""
    from saemerge.storage import parse_uri

    configured = any(os.environ.get(v) for v in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"))
    if parse_uri(run_uri).is_s3 and not configured:
        out(
            f"progress: no S3 settings here (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID or AWS_PROFILE) to read "
            f"{run_uri}; following KFP's run state only"
        )
        return None
    return RunProgress(run_uri, generations)


def compile_package(options: CompileOptions, directory: Path) -> tuple[Path, dict]:
    """The compiled pipeline under `directory`, and its compile stats."""
    from saemerge.pipeline.compile import compile_pipeline

    path = directory / f"{get_search(options.search).pipeline_name}.yaml"
    stats = compile_pipeline(path, options)
    return path, stats


def submit(req: SubmitRequest, out: Callable[[str], None] = print) -> SubmitResult:
    """Compile, upload (or reuse) the version, and start a run or a recurring run.

    Args:
        out: where progress lines go (``saemerge submit --json`` sends them to stderr).

    Raises:
        SaeMergeError: bad parameters or schedule, an unreachable or refusing API.
        WaitTimeout: ``wait`` with ``timeout`` and the run did not end in time.
    """
    cron = normalize_cron(req.schedule) if req.schedule else None
    if cron and req.wait:
        raise SaeMergeError("--wait follows one run; it cannot be combined with --schedule")
    raw = dict(req.params)
    added = default_run_uri(raw, req.run_root, cron)
    options = req.options if req.enable_caching is None else req.options.replace(caching=req.enable_caching)
    with tempfile.TemporaryDirectory(prefix="saemerge-submit-") as tmp:
        package, stats = compile_package(options, Path(tmp))
        compiled = package.read_bytes()
        spec = next(yaml.safe_load_all(compiled))
        params = coerce_params(raw, spec)
        if not req.options.gpu_merges and str(params.get("merge_device", "")).startswith("cuda"):
            raise SaeMergeError(
                f"--param merge_device={params['merge_device']}: the pipeline is compiled without "
                "--gpu-merges, so prune and merge steps have no GPU; add --gpu-merges"
            )
        # values, not only types
        RunConfig.from_params({**params, "steps": req.options.steps, "search": req.options.search})
        if notice := default_images_notice(req.options):  # after the checks: bad input stays one line
            print(f"saemerge: {notice}", file=sys.stderr, flush=True)
        name = get_search(req.options.search).pipeline_name
        result = SubmitResult(
            version_name=version_name_for(name, compiled), compiled_bytes=len(compiled), params=params
        )
        out(
            f"compiled {name}: {req.options.steps} generations, {stats.get('tasks_in_run', '?')} tasks, "
            f"{len(compiled):,} bytes"
        )
        if added:
            out(f"run_uri: {added} ({RUN_ID_PLACEHOLDER} becomes the KFP run id: each run writes its own prefix)")
        if req.dry_run:
            out(f"dry run: would submit version {result.version_name} with {json.dumps(params, sort_keys=True)}")
            return result
        from saemerge.pipeline.kube import kube_api

        kube = kube_api(req.kube_context)
        client, multi_user = connect(req, out, kube)
        where = req.host or "the current kube context"
        pods_namespace = req.namespace if multi_user and req.namespace else req.kfp_namespace
        if kube is not None:
            for line in preflight(kube, req, options, pods_namespace):
                out(line)
        with api_call("uploading the pipeline", where, result):
            result.pipeline_id, result.version_id, result.version_uploaded = ensure_version(
                client, package, result.version_name, req.options.search, req.namespace if multi_user else None
            )
    out(
        f"pipeline {name} ({result.pipeline_id}): version {result.version_id} "
        f"{'uploaded' if result.version_uploaded else 'already there, reused'}"
    )
    with api_call(f"creating experiment {req.experiment}", where, result), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        experiment = client.create_experiment(req.experiment, namespace=req.namespace)
    result.experiment_id = experiment.experiment_id
    run_name = req.run_name or time.strftime(f"{req.options.search}-%Y%m%d-%H%M%S")
    # No enable_caching here: with a version id kfp.Client ignores it (it applies it only to a
    # package it is given); the version's own tasks carry the caching choice (compile_package).
    common = dict(
        experiment_id=result.experiment_id,
        job_name=run_name,
        params=params,
        pipeline_id=result.pipeline_id,
        version_id=result.version_id,
        pipeline_root=req.pipeline_root,
        service_account=req.service_account,
    )
    if cron:
        with api_call("creating the recurring run", where, result):
            recurring = client.create_recurring_run(cron_expression=cron, max_concurrency=1, no_catchup=True, **common)
        result.recurring_run_id = recurring.recurring_run_id
        out(f"recurring run {run_name} ({result.recurring_run_id}): schedule '{cron}'")
        return result
    with api_call("creating the run", where, result):
        run = client.run_pipeline(**common)
    result.run_id = run.run_id
    if req.host:
        result.run_url = f"{req.host.rstrip('/')}/#/runs/details/{run.run_id}"
    out(f"run {run_name} ({run.run_id}) started" + (f": {result.run_url}" if result.run_url else ""))
    if req.wait:
        run_uri = str(params["run_uri"]).replace(RUN_ID_PLACEHOLDER, run.run_id)
        try:
            result.state = wait_for_run(
                client,
                run.run_id,
                poll_interval=req.poll_interval,
                timeout=req.timeout,
                out=out,
                progress=run_progress(run_uri, req.options.steps, out),
                pending=PendingWatch(kube, pods_namespace) if kube is not None else None,
            )
        except TimeoutError as exc:
            result.timed_out = True
            raise WaitTimeout(str(exc), result) from None
        except KfpApiError as exc:
            exc.result = result
            raise
    return result


class WaitTimeout(TimeoutError):
    """``--wait --timeout`` ran out; ``result`` says what was submitted."""

    def __init__(self, message: str, result: SubmitResult):
        super().__init__(message)
        self.result = result
