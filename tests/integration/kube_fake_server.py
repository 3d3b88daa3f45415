"""A small stand-in for the few Kubernetes API reads `saemerge submit` makes (on 127.0.0.1), and a
kube config pointing at it, for testing the version check, the preflight and --wait's pending pods.

    with FakeKube(images={"api-server": "ghcr.io/kubeflow/kfp-api-server:2.14.0"}, gpu_nodes=1) as kube:
        monkeypatch.setenv("KUBECONFIG", kube.kubeconfig(tmp_path))

Objects are the fields the kubernetes client reads, as the API server writes them: the
ml-pipeline Deployment (manifests/kustomize/base/pipeline/ml-pipeline-apiserver-deployment.yaml),
nodes with allocatable resources, secrets by name, and pods labelled ``pipeline/runid``.
"""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from tests.support.loopback import LoopbackServer


class FakeKube(LoopbackServer):
    def __init__(
        self,
        *,
        images: dict[str, str] | None = None,
        gpu_nodes: int = 0,
        gpu_resource: str = "nvidia.com/gpu",
        secrets: tuple[str, ...] = ("saemerge-s3",),
        namespace: str = "kubeflow",
        pods: list[dict] | None = None,
    ):
        # images: api-server, driver, launcher -> reference (None: no ml-pipeline Deployment)
        # pods: {"name", "run_id", "task", "created", "reason", "message"} of Pending pods (run_id
        #     None: a pod of whichever run is asked for)
        self.images = images
        self.gpu_nodes, self.gpu_resource = gpu_nodes, gpu_resource
        self.secrets, self.namespace = set(secrets), namespace
        self.pods = pods or []
        self.requests: list[str] = []
        self._serve(self._handler())

    def kubeconfig(self, directory: Path) -> str:
        path = Path(directory) / "kubeconfig.json"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "me", "user": {"token": "kube-tok"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me"}}],
                    "current-context": "fake",
                }
            )
        )
        return str(path)

    # ------------------------------------------------------------------------ objects

    def _deployment(self) -> dict:
        images = self.images or {}
        env = [{"name": "V2_DRIVER_IMAGE", "value": images["driver"]}] if "driver" in images else []
        env += [{"name": "V2_LAUNCHER_IMAGE", "value": images["launcher"]}] if "launcher" in images else []
        container = {"name": "ml-pipeline-api-server", "image": images.get("api-server", "x:dummy"), "env": env}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "ml-pipeline", "namespace": self.namespace},
            "spec": {
                "selector": {"matchLabels": {"app": "ml-pipeline"}},
                "template": {"metadata": {"labels": {"app": "ml-pipeline"}}, "spec": {"containers": [container]}},
            },
        }

    def _nodes(self) -> dict:
        items = []
        for i in range(self.gpu_nodes + 2):
            allocatable = {"cpu": "8", "memory": "32Gi"}
            if i < self.gpu_nodes:
                allocatable[self.gpu_resource] = "1"
            items.append({"metadata": {"name": f"node-{i}"}, "status": {"allocatable": allocatable}})
        return {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items}

    def _pods(self, selector: str) -> dict:
        items = []
        for pod in self.pods:
            if selector != f"pipeline/runid={pod['run_id']}" and not (pod["run_id"] is None and selector):
                continue
            condition = {"type": "PodScheduled", "status": "False", "reason": pod["reason"], "message": pod["message"]}
            items.append(
                {
                    "metadata": {
                        "name": pod["name"],
                        "namespace": self.namespace,
                        "creationTimestamp": pod["created"],
                        "labels": {
                            "pipeline/runid": pod["run_id"] or selector.split("=", 1)[1],
                            "pipelines.kubeflow.org/task_name": pod["task"],
                        },
                    },
                    "status": {"phase": "Pending", "conditions": [condition]},
                }
            )
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

    def _route(self, path: str, query: dict) -> tuple[int, dict]:
        if m := re.fullmatch(r"/apis/apps/v1/namespaces/([^/]+)/deployments/ml-pipeline", path):
            if self.images is None or m.group(1) != self.namespace:
                return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
            return 200, self._deployment()
        if path == "/api/v1/nodes":
            return 200, self._nodes()
        if m := re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets/([^/]+)", path):
            if m.group(2) in self.secrets and m.group(1) == self.namespace:
                return 200, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": m.group(2)}}
            return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}
        if re.fullmatch(r"/api/v1/namespaces/[^/]+/pods", path):
            return 200, self._pods(query.get("labelSelector", ""))
        return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                fake.requests.append(url.path)
                status, payload = fake._route(url.path, {k: v[-1] for k, v in parse_qs(url.query).items()})
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
