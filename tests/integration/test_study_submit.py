"""`saemerge study submit` against the local stand-in for the KFP v2beta1 API: one KFP run per grid
entry, all in the experiment ``study-<id>``, each with its own run_uri, seed and the study's
shared score cache; the study's record keeps the KFP run ids, and submitting again adds nothing."""

from __future__ import annotations

import os

import pytest
import yaml
from kfp_fake_server import API, FakeKfp

from saemerge import storage
from saemerge.cli import main

pytestmark = pytest.mark.integration

STUDY = {
    "name": "cluster-pair",
    "bench": {"size": "tiny", "uri": "s3://team-models/bench/tiny-seed{bench_seed}"},
    "bench_seeds": [0],
    "run_seeds": [0, 1],
    "params": {"opt_sizes": {"saebench_math": 8, "saebench_multilingual": 8}},
    "arms": [
        {"name": "sae-global", "search": "sae", "steps": 1},
        {"name": "pso", "search": "pso", "steps": 1},
    ],
}


@pytest.fixture(autouse=True)
def isolated_kfp_context(tmp_path, monkeypatch):
    from kfp.client import client as kfp_client

    monkeypatch.setattr(kfp_client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    for var in ("KFP_TOKEN", "KF_PIPELINES_ENDPOINT", "KFP_NAMESPACE", "SAEMERGE_CPU_IMAGE", "SAEMERGE_GPU_IMAGE"):
        monkeypatch.delenv(var, raising=False)


def test_study_submit_creates_one_run_per_entry_in_one_experiment(s3_env, tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    study_id = f"cluster-pair-{os.getpid()}"
    bucket = "saemerge-test"
    args = ["study", "submit", str(path), "--id", study_id, "--bucket", bucket, "--workdir", str(tmp_path)]
    with FakeKfp(task_names=["init population"]) as kfp:
        rc = main([*args, "--host", kfp.url, "--wait", "--poll-interval", "0.01"])
        out, err = capsys.readouterr()
        assert rc == 0, err[-3000:]
        (experiment,) = kfp.calls("POST", f"{API}/experiments")
        assert experiment.body["display_name"] == f"study-{study_id}"
        runs = kfp.calls("POST", f"{API}/runs")
        names = sorted(r.body["display_name"] for r in runs)
        assert names == sorted(f"{study_id}-{a}-b0-r{s}" for a in ("sae-global", "pso") for s in (0, 1))
        assert {r.body["experiment_id"] for r in runs} == set(kfp.experiments)
        created = kfp.calls("POST", f"{API}/pipelines")  # each created empty, then given its version
        assert sorted(c.body["display_name"] for c in created) == ["saemerge-pso", "saemerge-sae"]
        for r in runs:
            params = r.body["runtime_config"]["parameters"]
            entry = r.body["display_name"].removeprefix(f"{study_id}-")
            assert params["run_uri"] == f"s3://{bucket}/runs/{study_id}-{entry}"
            assert int(params["seed"]) == int(entry[-1])
            assert params["score_cache"] == f"s3://{bucket}/studies/{study_id}/score-cache"
            assert params["base_uri"] == "s3://team-models/bench/tiny-seed0/models/base"

        record = yaml.safe_load(storage.read_bytes(f"s3://{bucket}/studies/{study_id}/study.yaml"))
        assert {e["status"] for e in record["entries"]} == {"succeeded"}
        assert sorted(e["kfp_run_id"] for e in record["entries"]) == sorted(kfp.runs)

        rc = main([*args, "--host", kfp.url])  # again: every entry is done, nothing is submitted
        assert rc == 0 and len(kfp.calls("POST", f"{API}/runs")) == 4


def test_study_submit_dry_run_contacts_and_records_nothing(tmp_path, capsys, monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    rc = main(["study", "submit", str(path), "--dry-run", "--workdir", str(tmp_path / "w"), "--host", "http://x"])
    out, err = capsys.readouterr()
    assert rc == 0, err[-2000:]
    assert out.count("dry run: would submit") == 4


@pytest.mark.parametrize(
    "method,path,what",
    [
        ("POST", f"{API}/pipelines", "uploading the pipeline"),
        ("POST", f"{API}/runs", "creating the run"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_an_api_error_is_one_line_exit_4_as_submit_says(s3_env, tmp_path, capsys, method, path, what, as_json):
    """The same contract as `saemerge submit` (exit 4, the HTTP status and the server's first
    line, with --json a JSON error object on stdout); the message names the entry it failed on."""
    import json

    path_ = tmp_path / "study.yaml"
    path_.write_text(yaml.safe_dump(STUDY))
    study_id = f"cluster-err-{os.getpid()}"
    failures = {(method, path): (500, "internal error: database is locked\nstack trace line")}
    with FakeKfp(failures=failures) as kfp:
        rc = main(
            ["study", "submit", str(path_), "--id", study_id, "--bucket", "saemerge-test", "--workdir", str(tmp_path),
             "--host", kfp.url, *(["--json"] if as_json else [])]
        )  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 4, err[-3000:]
    (line,) = [x for x in err.splitlines() if x.startswith("saemerge: error:")]
    assert line.startswith(f"saemerge: error: study {study_id}, run sae-global-b0-r0: KFP API at {kfp.url}: {what}")
    assert "HTTP 500" in line and "database is locked" in line and "stack trace line" not in err
    assert "Traceback" not in err
    if as_json:
        error = json.loads(out)
        assert set(error) == {"error", "exit_code", "http_status", "submitted"}
        assert error["exit_code"] == 4 and error["http_status"] == 500
        assert error["error"] == line.removeprefix("saemerge: error: ")
        assert error["submitted"]["run_id"] is None
    else:
        assert "saemerge: error" not in out
    record = yaml.safe_load(storage.read_bytes(f"s3://saemerge-test/studies/{study_id}/study.yaml"))
    assert not any(e.get("kfp_run_id") for e in record["entries"])  # nothing is recorded as submitted


def test_study_submit_json_prints_the_entries_alone(s3_env, tmp_path, capsys):
    import json

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    study_id = f"cluster-json-{os.getpid()}"
    with FakeKfp() as kfp:
        rc = main(
            ["study", "submit", str(path), "--id", study_id, "--bucket", "saemerge-test", "--workdir", str(tmp_path),
             "--host", kfp.url, "--json"]
        )  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err[-3000:]
    summary = json.loads(out)  # stdout is the JSON alone: kfp.Client's and our progress went to stderr
    assert summary["study"] == study_id and summary["counts"] == {"running": 4}
    assert sorted(e["kfp_run_id"] for e in summary["entries"]) == sorted(kfp.runs)
    assert "compiled" in err


def test_study_submit_wait_timeout_exits_3_in_one_line(s3_env, tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "run_seeds": [0], "arms": STUDY["arms"][:1]}))
    study_id = f"cluster-wait-{os.getpid()}"
    with FakeKfp(run_states=["RUNNING"]) as kfp:
        rc = main(
            ["study", "submit", str(path), "--id", study_id, "--bucket", "saemerge-test", "--workdir", str(tmp_path),
             "--host", kfp.url, "--wait", "--timeout", "0.2", "--poll-interval", "0.05"]
        )  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 3, err[-3000:]
    (line,) = [x for x in err.splitlines() if x.startswith("saemerge: error:")]
    assert f"study {study_id}: run {next(iter(kfp.runs))} is still RUNNING after 0.2 s" in line
    assert "Traceback" not in err
    record = yaml.safe_load(storage.read_bytes(f"s3://saemerge-test/studies/{study_id}/study.yaml"))
    assert [e["status"] for e in record["entries"]] == ["running"]  # `study status` follows it from here
