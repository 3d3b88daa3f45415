"""`saemerge submit` against a local stand-in for the KFP v2beta1 API (tests/integration/kfp_fake_server.py).

The real kfp.Client talks HTTP to a server on 127.0.0.1; the tests assert what a real KFP
server would receive: the compiled spec, the typed run parameters, the experiment, the
version reference, the cron trigger, and the bearer token on every call (never printed).
"""

from __future__ import annotations

import json
import socket

import pytest
import yaml
from kfp_fake_server import API, FakeKfp

from saemerge.cli import main
from saemerge.pipeline.submit import coerce_params, normalize_cron

pytestmark = pytest.mark.integration

REQUIRED = [
    "--param",
    "run_uri=s3://saemerge/runs/r1",
    "--param",
    'experts=["s3://m/math","s3://m/ml"]',
    "--param",
    "base_uri=s3://m/base",
    "--param",
    "data_uri=s3://saemerge/data",
]
FAST = ["--steps", "1", "--poll-interval", "0.01"]


@pytest.fixture(autouse=True)
def isolated_kfp_context(tmp_path, monkeypatch):
    """kfp.Client reads ~/.config/kfp/context.json; keep a developer's file out of the tests."""
    from kfp.client import client as kfp_client

    monkeypatch.setattr(kfp_client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kube-config"))  # nor a developer's kube context
    for var in ("KFP_TOKEN", "KF_PIPELINES_ENDPOINT", "KFP_NAMESPACE", "SAEMERGE_CPU_IMAGE", "SAEMERGE_GPU_IMAGE"):
        monkeypatch.delenv(var, raising=False)


def submit(*args: str) -> int:
    return main(["submit", *FAST, *args])


def test_first_submit_uploads_creates_experiment_and_run_and_follows_it(capsys, monkeypatch):
    monkeypatch.setenv("KFP_TOKEN", "tok-3f9a1c")
    with FakeKfp(token="tok-3f9a1c", task_names=["init population", "report"]) as kfp:
        rc = submit(
            "--host",
            kfp.url,
            "--experiment",
            "ci-nightly",
            "--run-name",
            "r1",
            "--wait",
            "--json",
            "--cpu-image",
            "reg.example/sae-cpu:abc",
            "--gpu-image",
            "reg.example/sae-gpu:abc",
            "--service-account",
            "saemerge-pipeline-runner",
            "--pipeline-root",
            "s3://saemerge/root",
            *REQUIRED,
            "--param",
            "seed=7",
            "--param",
            "s_max=0.5",
            "--param",
            "reverse=true",
            "--param",
            'opt_sizes={"saebench_math": 8}',
            "--param",
            'test_sizes={"saebench_math": 16}',
        )
    out, err = capsys.readouterr()
    assert rc == 0, err
    # every call carried the token; the token was printed nowhere
    assert kfp.requests and all(r.headers.get("authorization") == "Bearer tok-3f9a1c" for r in kfp.requests)
    assert "tok-3f9a1c" not in out + err

    # the pipeline: created empty under its name, then its one version uploaded under the
    # content-hash name, with the spec compiled for these images
    assert not kfp.calls("POST", f"{API}/pipelines/upload")
    (create,) = kfp.calls("POST", f"{API}/pipelines")
    assert create.body["display_name"] == "saemerge-sae"
    (upload,) = kfp.calls("POST", f"{API}/pipelines/upload_version")
    assert upload.query["name"] == json.loads(out)["version_name"]
    assert upload.query["name"].startswith("saemerge-sae-")
    spec, platform = yaml.safe_load_all(upload.files["uploadfile"])
    assert spec["pipelineInfo"]["name"] == "saemerge-sae"
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"reg.example/sae-cpu:abc", "reg.example/sae-gpu:abc"}
    assert {"run_uri", "experts", "seed", "reverse"} <= set(spec["root"]["inputDefinitions"]["parameters"])
    assert "platforms" in platform

    # the experiment, created by name; the run, against the uploaded version, with typed params
    (exp_req,) = kfp.calls("POST", f"{API}/experiments")
    assert exp_req.body["display_name"] == "ci-nightly"
    (run_req,) = kfp.calls("POST", f"{API}/runs")
    (version,) = kfp.versions[upload_pipeline_id(kfp)]
    assert run_req.body["display_name"] == "r1"
    assert run_req.body["experiment_id"] == next(iter(kfp.experiments))
    assert run_req.body["pipeline_version_reference"] == {
        "pipeline_id": version["pipeline_id"],
        "pipeline_version_id": version["pipeline_version_id"],
    }
    assert "pipeline_spec" not in run_req.body  # the run references the version, not an inline copy
    assert run_req.body["service_account"] == "saemerge-pipeline-runner"
    assert run_req.body["runtime_config"] == {
        "pipeline_root": "s3://saemerge/root",
        "parameters": {
            "run_uri": "s3://saemerge/runs/r1",
            "experts": ["s3://m/math", "s3://m/ml"],
            "base_uri": "s3://m/base",
            "data_uri": "s3://saemerge/data",
            "seed": 7,
            "s_max": 0.5,
            "reverse": True,
            "opt_sizes": {"saebench_math": 8},
            "test_sizes": {"saebench_math": 16},
        },
    }

    # --wait printed each state change once and the tasks (to stderr: --json); stdout is the JSON alone
    run_id = run_req_id(kfp)
    assert [line for line in err.splitlines() if line.startswith(f"run {run_id}:")] == [
        f"run {run_id}: PENDING",
        f"run {run_id}: RUNNING",
        f"run {run_id}: SUCCEEDED",
    ]
    assert "  task init population: SUCCEEDED" in err
    summary = json.loads(out)
    assert summary["state"] == "SUCCEEDED" and summary["run_id"] == run_id
    assert summary["run_url"] == f"{kfp.url}/#/runs/details/{run_id}"
    assert summary["version_uploaded"] is True


def upload_pipeline_id(kfp: FakeKfp) -> str:
    (pid,) = kfp.pipelines
    return pid


def run_req_id(kfp: FakeKfp) -> str:
    (rid,) = kfp.runs
    return rid


def test_resubmitting_reuses_the_version_and_a_changed_spec_adds_one(capsys):
    with FakeKfp() as kfp:
        assert submit("--host", kfp.url, *REQUIRED) == 0  # creates the pipeline and its content-named version
        assert submit("--host", kfp.url, *REQUIRED) == 0  # same spec: reused, the first time already
        assert submit("--host", kfp.url, "--gpu-image", "x/gpu:2", *REQUIRED) == 0  # new spec: new version
    out = capsys.readouterr().out
    assert len(kfp.calls("POST", f"{API}/pipelines")) == 1
    uploads = kfp.calls("POST", f"{API}/pipelines/upload_version")
    assert len(uploads) == 2
    assert uploads[0].query["name"].startswith("saemerge-sae-") and uploads[0].query["name"] != uploads[1].query["name"]
    assert "already there, reused" in out
    versions = [r.body["pipeline_version_reference"]["pipeline_version_id"] for r in kfp.calls("POST", f"{API}/runs")]
    assert versions[0] == versions[1] != versions[2]
    assert len(kfp.calls("POST", f"{API}/experiments")) == 1  # found by name afterwards
    assert all(r.headers.get("authorization") is None for r in kfp.requests)  # no token given: none sent


def test_a_failed_run_exits_1_with_the_servers_error(capsys):
    with FakeKfp(run_states=["RUNNING", "FAILED"], run_error="evaluate: CUDA out of memory") as kfp:
        rc = submit("--host", kfp.url, "--wait", *REQUIRED)
    out = capsys.readouterr().out
    assert rc == 1
    assert out.rstrip().endswith("error: evaluate: CUDA out of memory")


def test_wait_gives_up_after_the_timeout_with_exit_3(capsys):
    with FakeKfp(run_states=["RUNNING"]) as kfp:
        rc = submit("--host", kfp.url, "--wait", "--timeout", "0.2", *REQUIRED)
    assert rc == 3
    assert "still RUNNING after 0.2 s" in capsys.readouterr().err


WITHOUT_RUN_URI = REQUIRED[2:]  # each run then writes under --run-root/{{workflow.uid}}
assert REQUIRED[1].startswith("run_uri=")


def test_schedule_creates_a_recurring_run_with_kfps_six_field_cron(capsys):
    with FakeKfp() as kfp:
        rc = submit(
            "--host",
            kfp.url,
            "--schedule",
            "0 3 * * 1",
            "--run-name",
            "weekly",
            "--no-cache",
            "--run-root",
            "s3://team-bucket/nightly",
            *WITHOUT_RUN_URI,
        )
    assert rc == 0, capsys.readouterr().err
    assert not kfp.calls("POST", f"{API}/runs")
    (req,) = kfp.calls("POST", f"{API}/recurringruns")
    body = req.body
    assert body["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert body["display_name"] == "weekly" and body["mode"] == "ENABLE"
    assert int(body["max_concurrency"]) == 1 and body["no_catchup"] is True
    # every firing writes its own prefix: KFP's scheduled-workflow controller replaces {{workflow.uid}}
    assert body["runtime_config"]["parameters"]["run_uri"] == "s3://team-bucket/nightly/{{workflow.uid}}"
    version = kfp.versions[upload_pipeline_id(kfp)][0]
    assert body["pipeline_version_reference"]["pipeline_version_id"] == version["pipeline_version_id"]


def test_multi_user_cluster_needs_a_namespace_and_gets_it(capsys):
    with FakeKfp(multi_user=True) as kfp:
        assert submit("--host", kfp.url, *REQUIRED) == 2
        assert "is multi-user: give --namespace" in capsys.readouterr().err
        assert not kfp.calls("POST", f"{API}/runs")
        assert submit("--host", kfp.url, "--namespace", "team-a", *REQUIRED) == 0
    (exp,) = kfp.calls("POST", f"{API}/experiments")
    assert exp.body["namespace"] == "team-a"
    assert all(r.query.get("namespace") == "team-a" for r in kfp.calls("GET", f"{API}/experiments"))
    # the pipeline is the user's: looked up and created in the namespace
    (create,) = kfp.calls("POST", f"{API}/pipelines")
    assert create.body["namespace"] == "team-a"
    assert [r.query.get("namespace") for r in kfp.calls("GET", f"{API}/pipelines")] == ["team-a"]


def test_single_user_cluster_gets_a_shared_pipeline(capsys):
    with FakeKfp() as kfp:
        assert submit("--host", kfp.url, "--namespace", "kubeflow", *REQUIRED) == 0
    (create,) = kfp.calls("POST", f"{API}/pipelines")
    assert "namespace" not in create.body


def test_json_prints_only_json_on_stdout(capsys):
    with FakeKfp(task_names=["init population"]) as kfp:
        rc = submit("--host", kfp.url, "--json", "--wait", *WITHOUT_RUN_URI)
    out, err = capsys.readouterr()
    assert rc == 0, err
    summary = json.loads(out)  # the whole of stdout; kfp.Client's "Experiment details: ..." went to stderr
    assert summary["state"] == "SUCCEEDED"
    assert summary["params"]["run_uri"] == "s3://saemerge/runs/{{workflow.uid}}"
    assert "details:" in err and "run_uri: s3://saemerge/runs/{{workflow.uid}}" in err
    (run_req,) = kfp.calls("POST", f"{API}/runs")
    assert run_req.body["runtime_config"]["parameters"]["run_uri"] == "s3://saemerge/runs/{{workflow.uid}}"


def test_a_recurring_run_with_a_fixed_run_uri_is_refused(capsys):
    with FakeKfp() as kfp:
        rc = submit("--host", kfp.url, "--schedule", "0 3 * * *", *REQUIRED)
        assert rc == 2 and "a recurring run would write every run into this one prefix" in capsys.readouterr().err
        assert not [r for r in kfp.requests if r.method == "POST"]
        rc = submit(
            "--host",
            kfp.url,
            "--schedule",
            "0 3 * * *",
            "--param",
            "run_uri=s3://b/r/{{workflow.uid}}",
            *WITHOUT_RUN_URI,
        )
    assert rc == 0, capsys.readouterr().err


def test_wait_follows_a_paused_run_to_its_end(capsys):
    with FakeKfp(run_states=["RUNNING", "PAUSED", "PAUSED", "RUNNING", "SUCCEEDED"]) as kfp:
        rc = submit("--host", kfp.url, "--wait", *REQUIRED)
    out = capsys.readouterr().out
    assert rc == 0
    states = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("run run-")]
    assert states[0] == "RUNNING" and states[1].startswith("PAUSED: paused (resume it") and states[-1] == "SUCCEEDED"
    assert len(states) == 4  # each change once


def test_a_run_still_paused_at_the_timeout_exits_3_with_its_json(capsys):
    with FakeKfp(run_states=["PAUSED"]) as kfp:
        rc = submit("--host", kfp.url, "--wait", "--timeout", "0.2", "--json", *REQUIRED)
    out, err = capsys.readouterr()
    assert rc == 3 and "still PAUSED after 0.2 s" in err
    summary = json.loads(out)
    assert summary["timed_out"] is True and summary["run_id"] == run_req_id(kfp)


def test_merge_device_cuda_needs_gpu_merges(capsys):
    with FakeKfp() as kfp:
        assert submit("--host", kfp.url, "--param", "merge_device=cuda", *REQUIRED) == 2
        assert "compiled without --gpu-merges" in capsys.readouterr().err
        assert submit("--host", kfp.url, "--param", "merge_device=cuda", "--gpu-merges", *REQUIRED) == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--param", "run_url=s3://x"], "unknown pipeline parameter 'run_url'; did you mean 'run_uri'?"),
        (["--param", "seed=abc"], "--param seed='abc': pipeline parameter seed takes an integer"),
        (["--param", "baselines=ties"], "pipeline parameter baselines takes a JSON list"),
        (["--param", "run_uri=s3://again"], "--param run_uri: given twice"),
        (["--param", "seed"], "--param 'seed': expected NAME=VALUE"),
        (["--schedule", "every day"], "--schedule 'every day': expected a cron expression"),
        (["--schedule", "0 3 * * *", "--wait"], "--wait follows one run; it cannot be combined with --schedule"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(args, message, capsys):
    with FakeKfp() as kfp:
        rc = submit("--host", kfp.url, *REQUIRED, *args)
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not [r for r in kfp.requests if r.method == "POST"]


def test_missing_required_parameters_are_named(capsys):
    with FakeKfp() as kfp:
        rc = submit("--host", kfp.url, "--param", "run_uri=s3://x/y")
    assert rc == 2
    assert "missing pipeline parameter(s) base_uri, data_uri, experts" in capsys.readouterr().err
    assert not kfp.requests


def test_a_refused_token_is_reported_without_echoing_it(capsys):
    with FakeKfp(token="right") as kfp:
        rc = submit("--host", kfp.url, "--token", "wrong-secret-4711", *REQUIRED)
    out, err = capsys.readouterr()
    assert rc == 4
    assert "healthz: HTTP 401" in err and "--token or KFP_TOKEN" in err
    assert "wrong-secret-4711" not in out + err
    assert len(kfp.requests) == 1  # one healthz, no retry loop


def test_an_unreachable_host_is_one_line(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the call: nothing listens there
    rc = submit("--host", f"http://127.0.0.1:{port}", *REQUIRED)
    assert rc == 4
    assert f"KFP API at http://127.0.0.1:{port}: healthz: cannot reach it" in capsys.readouterr().err


def test_dry_run_compiles_and_checks_but_contacts_nothing(capsys):
    rc = submit("--host", "http://127.0.0.1:9", "--dry-run", *REQUIRED, "--param", "gamma=0")
    out = capsys.readouterr().out
    assert rc == 0
    assert '"gamma": 0.0' in out and "would submit version saemerge-sae-" in out


def test_param_typing_and_cron_rules():
    spec = {
        "root": {
            "inputDefinitions": {
                "parameters": {
                    "s": {"parameterType": "STRING"},
                    "i": {"parameterType": "NUMBER_INTEGER", "defaultValue": 1},
                    "f": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.5},
                    "b": {"parameterType": "BOOLEAN", "defaultValue": False},
                    "l": {"parameterType": "LIST", "defaultValue": []},
                    "d": {"parameterType": "STRUCT", "defaultValue": {}},
                }
            }
        }
    }
    assert coerce_params({"s": "123", "i": "3", "f": "2", "b": "False", "l": "[1]", "d": '{"a": 1}'}, spec) == {
        "s": "123",
        "i": 3,
        "f": 2.0,
        "b": False,
        "l": [1],
        "d": {"a": 1},
    }
    assert coerce_params({"s": '"quoted"'}, spec) == {"s": "quoted"}
    with pytest.raises(Exception, match="takes an integer"):
        coerce_params({"s": "x", "i": "2.5"}, spec)
    with pytest.raises(Exception, match="takes true or false"):
        coerce_params({"s": "x", "b": "1"}, spec)
    assert normalize_cron("*/5 * * * *") == "0 */5 * * * *"
    assert normalize_cron("30 0 3 * * 1") == "30 0 3 * * 1"


# ------------------------------------------------------------------ the backend's version floor


@pytest.mark.parametrize(
    "tag,rc",
    [("2.3.0", 5), ("2.5.0", 5), ("2.13.2", 5), ("2.14.0", 0), ("v2.15.1", 0), ("2.17.0", 0), ("unknown", 0)],
)
def test_submit_refuses_a_backend_below_the_floor(tag, rc, capsys):
    with FakeKfp(tag_name=tag) as kfp:
        got = submit("--host", kfp.url, *REQUIRED)
    out, err = capsys.readouterr()
    assert got == rc, err
    if rc == 5:
        (line,) = [x for x in err.splitlines() if x.startswith("saemerge: error:")]
        assert f"KFP at {kfp.url} is version {tag}; the pipeline needs KFP 2.14 or newer for dsl.Collected" in line
        assert not [r for r in kfp.requests if r.method == "POST"]  # nothing uploaded, nothing started
    elif tag == "unknown":
        assert "its version cannot be known (healthz says 'unknown', as releases before 2.16 do; no kube" in out
        assert "the pipeline needs 2.14 or newer for dsl.Collected" in out and "--kfp-version" in out
        assert kfp.calls("POST", f"{API}/runs")
    else:
        assert "warning:" not in out and kfp.calls("POST", f"{API}/runs")


def test_a_refused_backend_under_json_prints_a_json_error(capsys):
    with FakeKfp(tag_name="2.4.1") as kfp:
        rc = submit("--host", kfp.url, "--json", *REQUIRED)
    out, err = capsys.readouterr()
    assert rc == 5
    error = json.loads(out)
    assert error["exit_code"] == 5 and "version 2.4.1" in error["error"] and error["submitted"] is None
    assert "(and 1 older feature(s)" in error["error"]  # 2.5: secretNameParameter


# ------------------------------------------------------------------ caching


def _tasks(spec: dict):
    dags = [spec["root"]["dag"], *[c["dag"] for c in spec["components"].values() if "dag" in c]]
    return [t for d in dags for t in d.get("tasks", {}).values()]


def test_kfp_cache_is_off_in_every_task_and_no_cache_changes_nothing(capsys):
    """The run's own records make a re-run free and are checked against S3; a KFP cache hit would
    hand on an earlier execution's URIs whether S3 still holds them or not: off, nested
    generations included, and --no-cache (kept for old scripts) submits the same version."""
    with FakeKfp() as kfp:
        assert submit("--host", kfp.url, *REQUIRED) == 0
        assert submit("--host", kfp.url, "--no-cache", *REQUIRED) == 0
    (upload,) = kfp.calls("POST", f"{API}/pipelines/upload_version")
    spec = next(yaml.safe_load_all(upload.files["uploadfile"]))
    nested = [t for c in spec["components"].values() if "dag" in c for t in c["dag"]["tasks"].values()]
    assert nested  # the generations' own tasks are covered, not only the root DAG's
    assert all(t["cachingOptions"] == {"enableCache": False} for t in _tasks(spec))
    default_run, no_cache_run = kfp.calls("POST", f"{API}/runs")
    assert (
        default_run.body["pipeline_version_reference"]["pipeline_version_id"]
        == no_cache_run.body["pipeline_version_reference"]["pipeline_version_id"]
    )


# ------------------------------------------------------------------ errors of the API server


@pytest.mark.parametrize(
    "method,path,what",
    [
        ("GET", f"{API}/pipelines", "uploading the pipeline"),
        ("POST", f"{API}/pipelines", "uploading the pipeline"),
        ("POST", f"{API}/pipelines/upload_version", "uploading the pipeline"),
        ("POST", f"{API}/experiments", "creating experiment saemerge"),
        ("POST", f"{API}/runs", "creating the run"),
        ("POST", f"{API}/recurringruns", "creating the recurring run"),
        ("GET", f"{API}/runs/.*", "polling failed"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_every_api_error_is_one_line_exit_4_and_json_with_json(method, path, what, as_json, capsys):
    failures = {(method, path): (500, "internal error: database is locked\nstack trace line")}
    args = ["--schedule", "0 3 * * *", *WITHOUT_RUN_URI] if "recurring" in what else ["--wait", *REQUIRED]
    if "polling" in what:
        failures = {(method, path): (404, "run not found")}
    with FakeKfp(failures=failures) as kfp:
        rc = submit("--host", kfp.url, *(["--json"] if as_json else []), *args)
    out, err = capsys.readouterr()
    assert rc == 4, err
    (line,) = [x for x in err.splitlines() if x.startswith("saemerge: error:")]
    assert what in line and "Traceback" not in err
    if "polling" not in what:
        assert f"KFP API at {kfp.url}: {what}: HTTP 500" in line and "database is locked" in line
        assert "stack trace line" not in err  # the server's first line only
    if as_json:
        error = json.loads(out)
        assert error["exit_code"] == 4 and error["error"] == line.removeprefix("saemerge: error: ")
        assert error["http_status"] == (404 if "polling" in what else 500)
        if "polling" in what:  # the run exists: the error says which
            assert error["submitted"]["run_id"] == run_req_id(kfp)
    else:
        assert out.count("saemerge: error") == 0


# ------------------------------------------------------------------ progress from the run's records


def test_wait_follows_the_runs_records_when_kfps_task_list_goes_empty(tmp_path, capsys):
    from saemerge.runlog import RunLayout, write_json

    run = RunLayout(str(tmp_path / "runs" / "r1"))

    def steps_write(poll: int) -> None:  # what the run's steps write as KFP is polled
        if poll == 1:
            write_json(run.metrics(-1), {"generation": -1, "best_fitness": 0.5, "accepted": 8, "offspring": 8})
        if poll == 3:
            metrics = {"generation": 0, "best_fitness": 0.61, "accepted": 2, "offspring": 4, "mean_sparsity": 0.4}
            write_json(run.metrics(0), metrics)
        if poll == 4:
            (tmp_path / "runs" / "r1" / "final").mkdir(parents=True)
            (tmp_path / "runs" / "r1" / "final" / "results.parquet").write_bytes(b"PAR1")

    states = ["RUNNING"] * 5 + ["SUCCEEDED"]
    with FakeKfp(
        run_states=states, task_names=["init population", "generation"], tasks_vanish_at=2, on_poll=steps_write
    ) as kfp:
        rc = submit("--host", kfp.url, "--wait", *REQUIRED[2:], "--param", f"run_uri={run.root}")
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = out.splitlines()
    gone = next(i for i, x in enumerate(lines) if "KFP's task list is empty now" in x)
    assert "progress continues from the run's records" in lines[gone]
    after = lines[gone + 1 :]
    assert "progress: generation 1/1 (gen-00): best F 0.6100, accepted 2/4, mean ρ 0.400" in after
    assert any(x.startswith("progress: final evaluation written:") for x in after)
    assert "progress: initial population: best F 0.5000, accepted 8/8" in lines
    assert lines[-1] == f"run {run_req_id(kfp)}: SUCCEEDED"


def test_wait_without_s3_settings_says_so_once(capsys, monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(var, raising=False)
    with FakeKfp() as kfp:
        assert submit("--host", kfp.url, "--wait", *REQUIRED) == 0
    out = capsys.readouterr().out
    assert out.count("progress: no S3 settings here") == 1


def test_an_api_server_that_goes_away_while_waiting_is_one_line_exit_4(capsys):
    """A dropped connection is urllib3's error, not an OSError: polling retries, then stops in one line."""
    import threading

    box: dict = {}

    def go_away(poll: int) -> None:
        if poll == 1:
            kfp = box["kfp"]
            threading.Thread(target=lambda: (kfp._server.shutdown(), kfp._server.server_close())).start()

    with FakeKfp(run_states=["RUNNING"], on_poll=go_away) as kfp:
        box["kfp"] = kfp
        rc = submit("--host", kfp.url, "--wait", "--json", *REQUIRED)
    out, err = capsys.readouterr()
    assert rc == 4, err[-2000:]
    assert "polling failed" in err and "Traceback" not in err
    assert json.loads(out)["submitted"]["run_id"] == run_req_id(kfp)
