"""What ``saemerge submit`` reads from the Kubernetes API when a kube context is at hand.

Three things the KFP API cannot say:

- **the backend's version** (:func:`kfp_images`): healthz reports the API server's
  ``TAG_NAME``, which the release builds of 2.5 to 2.15 do not set (``unknown``; fixed in
  2.16.0, kubeflow/pipelines 94841d6c85). The ``ml-pipeline`` Deployment names the API
  server's image and, in its environment, the driver's and the launcher's
  (``V2_DRIVER_IMAGE``, ``V2_LAUNCHER_IMAGE``; ``manifests/kustomize/base/pipeline/
  ml-pipeline-apiserver-deployment.yaml`` at 2.14.0 and 2.17.0), each tagged with its release;
- **whether the GPU steps can be scheduled** (:func:`nodes_with`): some node must advertise
  the accelerator resource (without the device plugin none does, and the pod stays Pending);
- **whether the S3 secret exists** (:func:`secret_exists`): the steps mount it with
  ``optional=False``, so without it every pod stays in ContainerCreating;

and, while ``--wait`` follows a run, **why a pod does not start** (:func:`waiting_pods`: the
run's pods carry the label ``pipeline/runid``, ``v2_template.go`` at 2.14.0).

Every call is one GET; none writes. The client is the ``kubernetes`` package kfp depends on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

KFP_DEPLOYMENT = "ml-pipeline"
IMAGE_ENV = {"V2_DRIVER_IMAGE": "driver", "V2_LAUNCHER_IMAGE": "launcher"}


def kube_api(context: str | None = None) -> Any | None:
    """An ``ApiClient`` for the kube context (the current one by default), or in-cluster; None
    when there is neither (no kube config, or a context that names nothing)."""
    import os

    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    settings = client.Configuration()
    try:  # KUBECONFIG as it is now (the kubernetes package reads it once, when imported)
        config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or "~/.kube/config", context=context, client_configuration=settings
        )
    except (ConfigException, OSError, TypeError, ValueError):
        try:
            config.load_incluster_config(client_configuration=settings)
        except ConfigException:
            return None
    return client.ApiClient(settings)


def kfp_images(api: Any, namespace: str) -> dict[str, str]:
    """The KFP backend's images: ``api-server``, ``driver`` and ``launcher`` -> image reference,
    from the ``ml-pipeline`` Deployment in `namespace` ({} when it cannot be read)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        deployment = client.AppsV1Api(api).read_namespaced_deployment(KFP_DEPLOYMENT, namespace)
    except (ApiException, OSError, ValueError):
        return {}
    found: dict[str, str] = {}
    for container in deployment.spec.template.spec.containers or []:
        if "api-server" in (container.image or "") or container.name == "ml-pipeline-api-server":
            found["api-server"] = container.image
        for env in container.env or []:
            if env.name in IMAGE_ENV and env.value:
                found[IMAGE_ENV[env.name]] = env.value
    return found


def image_tag(image: str) -> str | None:
    """``ghcr.io/kubeflow/kfp-driver:2.14.0`` -> ``2.14.0``; no tag (or a digest only) -> None."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def nodes_with(api: Any, resource: str) -> list[str] | None:
    """Names of the nodes whose allocatable resources include `resource` (> 0); None when the
    nodes cannot be listed (no permission)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        nodes = client.CoreV1Api(api).list_node().items
    except (ApiException, OSError, ValueError):
        return None
    out = []
    for node in nodes:
        amount = str((node.status.allocatable or {}).get(resource, "0")).strip()
        if amount not in ("", "0"):
            out.append(node.metadata.name)
    return out


def secret_exists(api: Any, namespace: str, name: str) -> bool | None:
    """Whether the secret exists in `namespace`; None when that cannot be read (no permission)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as exc:
        return False if exc.status == 404 else None
    except (OSError, ValueError):
        return None
    return True


@dataclass(frozen=True)
class WaitingPod:
    name: str
    task: str  # the KFP task (pod label), or the pod's name
    reason: str  # Unschedulable: 0/3 nodes ..., ContainerCreating: secret "x" not found, ...
    seconds: float


def waiting_pods(api: Any, namespace: str, run_id: str, now: dt.datetime | None = None) -> list[WaitingPod] | None:
    """The run's pods that have not started (phase Pending) and why, oldest first; None when the
    pods cannot be listed."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"pipeline/runid={run_id}").items
    except (ApiException, OSError, ValueError):
        return None
    out = []
    for pod in pods:
        if pod.status.phase != "Pending":
            continue
        created = pod.metadata.creation_timestamp or now
        labels = pod.metadata.labels or {}
        out.append(
            WaitingPod(
                pod.metadata.name,
                labels.get("pipelines.kubeflow.org/task_name") or pod.metadata.name,
                pending_reason(pod),
                (now - created).total_seconds(),
            )
        )
    return sorted(out, key=lambda p: -p.seconds)


def pending_reason(pod: Any) -> str:
    """Why a Pending pod waits: its PodScheduled condition's reason and message, else the first
    waiting container's (ContainerCreating, ImagePullBackOff, CreateContainerConfigError ...)."""
    for cond in pod.status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return f"{cond.reason or 'not scheduled'}: {cond.message or ''}".strip().rstrip(":")
    for status in [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]:
        waiting = status.state.waiting if status.state else None
        if waiting is not None:
            return f"{waiting.reason or 'waiting'}: {waiting.message or ''}".strip().rstrip(":")
    return "Pending"
