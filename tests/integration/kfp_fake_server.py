"""A small stand-in for the Kubeflow Pipelines v2beta1 REST API, for testing `saemerge submit`.

It implements the endpoints kfp.Client calls on the submit path, keeps pipelines, versions,
experiments, runs and recurring runs in memory, and records every request (method, path,
query, headers, JSON body or uploaded file) so a test can assert what a real server would
receive. Runs advance one state per GET along a scripted list (``run_states``).

    with FakeKfp(run_states=["PENDING", "RUNNING", "SUCCEEDED"]) as kfp:
        ... kfp.url ..., kfp.requests
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from tests.support.loopback import LoopbackServer

API = "/apis/v2beta1"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict | None = None
    files: dict[str, bytes] = field(default_factory=dict)


def _matches(item: dict, filter_json: str | None) -> bool:
    if not filter_json:
        return True
    for pred in json.loads(filter_json).get("predicates", []):
        # protojson accepts the enum by name or by number (kfp.Client sends 1)
        if pred.get("operation") not in ("EQUALS", 1) or item.get(pred["key"]) != pred.get(
            "stringValue", pred.get("string_value")
        ):
            return False
    return True


class FakeKfp(LoopbackServer):
    def __init__(
        self,
        *,
        multi_user: bool = False,
        token: str | None = None,
        run_states: list[str] | None = None,
        run_error: str | None = None,
        task_names: list[str] | None = None,
        tag_name: str = "2.14.0",
        failures: dict[tuple[str, str], tuple[int, str]] | None = None,
        tasks_vanish_at: int | None = None,
        on_poll: Callable[[int], None] | None = None,
    ):
        # tag_name: what healthz reports as the server's version (the API server's TAG_NAME).
        # failures: (method, path regex) -> (HTTP status, error message) answered instead of the route.
        # tasks_vanish_at: from this poll on (0-based) a run has no task_details, as when Argo
        #     has compressed the workflow's nodes. on_poll(i): called at the i-th GET of a run.
        self.tag_name = tag_name
        self.failures = failures or {}
        self.tasks_vanish_at = tasks_vanish_at
        self.on_poll = on_poll
        self.multi_user = multi_user
        self.token = token  # when set, every request must carry "Authorization: Bearer <token>"
        self.run_states = run_states or ["PENDING", "RUNNING", "SUCCEEDED"]
        self.run_error = run_error
        self.task_names = task_names or []
        self.requests: list[Request] = []
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring: dict[str, dict] = {}
        self.packages: dict[str, bytes] = {}  # version id -> the pipeline YAML uploaded as it
        self._ids = itertools.count(1)
        self._polls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._serve(self._handler())

    def calls(self, method: str, pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    # ------------------------------------------------------------------------ routing

    def _route(self, req: Request) -> tuple[int, dict]:
        p, q = req.path, req.query
        for (method, pattern), (status, message) in self.failures.items():
            if req.method == method and re.fullmatch(pattern, p):
                return status, {"error": message, "code": 2, "message": message, "details": []}
        if req.method == "GET" and p == f"{API}/healthz":
            # as the API server writes it (backend/src/apiserver/main.go): version, commit, mode
            return 200, {"commit_sha": "0123abc", "tag_name": self.tag_name, "multi_user": self.multi_user}
        if req.method == "POST" and p == f"{API}/pipelines":
            return self._create_pipeline(req)
        if req.method == "GET" and p == f"{API}/pipelines":
            items = [x for x in self.pipelines.values() if _matches(x, q.get("filter"))]
            return 200, {"pipelines": items, "total_size": len(items)} if items else {}
        if req.method == "POST" and p == f"{API}/pipelines/upload":
            return self._upload(req)
        if req.method == "POST" and p == f"{API}/pipelines/upload_version":
            return self._upload_version(req)
        m = re.fullmatch(rf"{API}/pipelines/([^/]+)/versions", p)
        if req.method == "GET" and m:
            versions = [v for v in self.versions.get(m.group(1), []) if _matches(v, q.get("filter"))]
            if q.get("sort_by", "").endswith("desc"):
                versions = versions[::-1]
            versions = versions[: int(q.get("page_size", 100))]
            return 200, {"pipeline_versions": versions, "total_size": len(versions)} if versions else {}
        if req.method == "GET" and p == f"{API}/experiments":
            items = [
                x
                for x in self.experiments.values()
                if _matches(x, q.get("filter")) and (not q.get("namespace") or x.get("namespace") == q["namespace"])
            ]
            return 200, {"experiments": items, "total_size": len(items)} if items else {}
        if req.method == "POST" and p == f"{API}/experiments":
            if self.multi_user and not req.body.get("namespace"):
                return 400, {"error": "namespace is required in multi-user mode", "code": 3}
            exp = {**req.body, "experiment_id": self._id("exp"), "storage_state": "AVAILABLE"}
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        m = re.fullmatch(rf"{API}/experiments/([^/]+)", p)
        if req.method == "GET" and m and m.group(1) in self.experiments:
            return 200, self.experiments[m.group(1)]
        if req.method == "POST" and p == f"{API}/runs":
            return self._create_run(req)
        m = re.fullmatch(rf"{API}/runs/([^/]+)", p)
        if req.method == "GET" and m and m.group(1) in self.runs:
            return 200, self._poll(m.group(1))
        if req.method == "POST" and p == f"{API}/recurringruns":
            rec = {**req.body, "recurring_run_id": self._id("rec"), "status": "ENABLED"}
            self.recurring[rec["recurring_run_id"]] = rec
            return 200, rec
        return 404, {"error": f"no route {req.method} {p}", "code": 5}

    def _upload(self, req: Request) -> tuple[int, dict]:
        name = req.query["name"]
        if any(x["display_name"] == name for x in self.pipelines.values()):
            return 409, {"error": f"pipeline {name} already exists", "code": 6}
        pipe = {
            "pipeline_id": self._id("pipe"),
            "display_name": name,
            "description": req.query.get("description", ""),
            "namespace": req.query.get("namespace", ""),
        }
        self.pipelines[pipe["pipeline_id"]] = pipe
        # KFP creates the first version together with the pipeline, named like it
        self.versions[pipe["pipeline_id"]] = [self._version(pipe["pipeline_id"], name, req.files["uploadfile"])]
        return 200, pipe

    def _create_pipeline(self, req: Request) -> tuple[int, dict]:
        """CreatePipeline: a pipeline without any version."""
        name = req.body.get("display_name") or req.body.get("name")
        if any(x["display_name"] == name for x in self.pipelines.values()):
            return 409, {"error": f"pipeline {name} already exists", "code": 6}
        pipe = {
            "pipeline_id": self._id("pipe"),
            "display_name": name,
            "description": req.body.get("description", ""),
            "namespace": req.body.get("namespace", ""),
        }
        self.pipelines[pipe["pipeline_id"]] = pipe
        self.versions[pipe["pipeline_id"]] = []
        return 200, pipe

    def _upload_version(self, req: Request) -> tuple[int, dict]:
        pid, name = req.query["pipelineid"], req.query["name"]
        if pid not in self.pipelines:
            return 404, {"error": f"pipeline {pid} not found", "code": 5}
        if any(v["display_name"] == name for v in self.versions[pid]):
            return 409, {"error": f"version {name} already exists", "code": 6}
        version = self._version(pid, name, req.files["uploadfile"])
        self.versions[pid].append(version)
        return 200, version

    def _version(self, pid: str, name: str, package: bytes) -> dict:
        version_id = self._id("ver")
        self.packages[version_id] = package
        return {
            "pipeline_id": pid,
            "pipeline_version_id": version_id,
            "display_name": name,
            "package_bytes": len(package),
        }

    def _create_run(self, req: Request) -> tuple[int, dict]:
        body = req.body
        ref = body.get("pipeline_version_reference") or {}
        versions = self.versions.get(ref.get("pipeline_id"), [])
        if not any(v["pipeline_version_id"] == ref.get("pipeline_version_id") for v in versions):
            return 404, {"error": "pipeline version not found", "code": 5}
        if body.get("experiment_id") not in self.experiments:
            return 404, {"error": "experiment not found", "code": 5}
        run = {**body, "run_id": self._id("run"), "state": "PENDING"}
        self.runs[run["run_id"]] = run
        return 200, run

    def _poll(self, run_id: str) -> dict:
        poll = self._polls.get(run_id, 0)
        self._polls[run_id] = poll + 1
        if self.on_poll is not None:
            self.on_poll(poll)
        i = min(poll, len(self.run_states) - 1)
        run = dict(self.runs[run_id], state=self.run_states[i])
        if self.task_names and (self.tasks_vanish_at is None or poll < self.tasks_vanish_at):
            run["run_details"] = {
                "task_details": [
                    {"task_id": f"t{k}", "display_name": n, "state": "SUCCEEDED" if i > k else "RUNNING"}
                    for k, n in enumerate(self.task_names)
                ]
            }
        if self.run_states[i] == "FAILED" and self.run_error:
            run["error"] = {"code": 2, "message": self.run_error}
        return run

    # ------------------------------------------------------------------------ HTTP

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                req = Request(method, url.path, query, {k.lower(): v for k, v in self.headers.items()})
                ctype = self.headers.get("Content-Type", "")
                if ctype.startswith("multipart/form-data"):
                    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        f"Content-Type: {ctype}\r\n\r\n".encode() + raw
                    )
                    for part in msg.iter_parts():
                        req.files[part.get_param("name", header="content-disposition")] = part.get_payload(decode=True)
                elif raw:
                    req.body = json.loads(raw)
                with fake._lock:
                    fake.requests.append(req)
                    if fake.token is not None and req.headers.get("authorization") != f"Bearer {fake.token}":
                        status, payload = 401, {"error": "Unauthorized", "code": 16}
                    else:
                        status, payload = fake._route(req)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

        return Handler
