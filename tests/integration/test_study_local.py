"""A study of two micro runs on the embedded store: run, interrupt, resume, report.

Real parts throughout: `saemerge study run --local` in a child process (kfp.local runs both
pipelines), SIGINT in the middle of the second run, the same command again (the finished run
is not redone, the interrupted one resumes), then `saemerge study report`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import yaml

from saemerge import storage
from saemerge.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STUDY = {
    "name": "micro-pair",
    "bench": {"size": "micro"},
    "bench_seeds": [0],
    "run_seeds": [0],
    "params": {
        "opt_sizes": {"saebench_math": 6, "saebench_multilingual": 6},
        "test_sizes": {"saebench_math": 8, "saebench_multilingual": 8},
        "archive_size": 4,
    },
    "arms": [
        {"name": "sae-global", "search": "sae", "steps": 1},
        {"name": "sae-local", "search": "sae", "steps": 1, "params": {"scoring": "local"}},
    ],
}


def _study(workdir, bucket, path, *extra):
    return [sys.executable, "-m", "saemerge", "study", *extra, "--workdir", str(workdir), "--bucket", bucket, str(path)]


def test_study_runs_resumes_after_an_interrupt_and_reports(s3_env, micro_bench, tmp_path, capsys):
    workdir = tmp_path / "work"
    shutil.copytree(micro_bench, workdir / "bench" / "micro-seed0")
    bucket = "saemerge-test"
    study_id = f"micro-pair-{os.getpid()}"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    cmd = [sys.executable, "-m", "saemerge", "study", "run", "--local", str(path), "--id", study_id]
    cmd += ["--workdir", str(workdir), "--bucket", bucket]
    record_uri = f"s3://{bucket}/studies/{study_id}/study.yaml"

    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in first.stdout:
            seen.append(line)
            if "run sae-local-b0-r0 (2;" in line:  # the first run finished, the second starts
                break
        else:
            pytest.fail("the study ended before its second run:\n" + "".join(seen[-40:]))
        second_run = f"s3://{bucket}/runs/{study_id}-sae-local-b0-r0/run.json"
        deadline = time.monotonic() + 120
        while not storage.exists(second_run) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert storage.exists(second_run), "the second run never started its pipeline"
        first.send_signal(signal.SIGINT)
        rest, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, "".join(seen[-20:]) + rest[-2000:]
    record = yaml.safe_load(storage.read_bytes(record_uri))
    assert [e["status"] for e in record["entries"]] == ["succeeded", "pending"]
    first_log = workdir / "runs" / f"{study_id}-sae-global-b0-r0" / "kfp.log"
    size_before = first_log.stat().st_size

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "run sae-local-b0-r0" in again.stdout and "run sae-global-b0-r0" not in again.stdout
    assert first_log.stat().st_size == size_before  # the finished run was not redone
    record = yaml.safe_load(storage.read_bytes(record_uri))
    assert [e["status"] for e in record["entries"]] == ["succeeded", "succeeded"]
    # both runs share the study's score cache: the base, experts and baselines scored once
    cached = storage.list_uris(f"s3://{bucket}/studies/{study_id}/score-cache")
    assert cached and not storage.list_uris(f"s3://{bucket}/runs/{study_id}-sae-local-b0-r0/cache")

    out_dir = tmp_path / "report"
    rc = main(["study", "report", study_id, "--bucket", bucket, "--workdir", str(workdir), "--out", str(out_dir)])
    assert rc == 0, capsys.readouterr().err
    text = (out_dir / "report.md").read_text()
    for method in ("sae-global", "sae-local", "weight_average", "task_arithmetic", "ties", "base"):
        assert method in text
    assert "data:image/png;base64," in text and "Runs finished: 2 of 2" in text
    # every pick attributed to the experts (from its run's models), its per-task optimisation score known
    attribution = text.split("## Attribution of each pick")[1].split("## Plots")[0]
    assert "| sae-global | b0 r0 |" in attribution and "| sae-local | b0 r0 |" in attribution
    # the experts and the one-shot merges the runs evaluated, attributed from their models
    reference = attribution.split("## Attribution of the baselines and experts")[1]
    for method in ("expert:math", "expert:multilingual", "weight_average", "task_arithmetic", "ties"):
        assert f"| {method} | b0 | 0 |" in reference, reference
    assert "| expert:math | b0 | 0 | 1.000 | 0.000 |" in reference
    assert "| weight_average | b0 | 0 | 0.500 | 0.500 |" in reference
    assert "| sae-global | saebench_math |" in text
    summary = pq.read_table(out_dir / "summary.parquet").to_pylist()
    assert {r["method"] for r in summary} >= {"sae-global", "sae-local", "weight_average"}
    paired = pq.read_table(out_dir / "paired.parquet").to_pylist()
    assert {r["other"] for r in paired} >= {"sae-local", "weight_average"}
    assert storage.exists(f"s3://{bucket}/studies/{study_id}/report/report.md")

    # another study with one of these runs in its grid (same configuration, seed and bench)
    # points at the finished run instead of running it again; a changed parameter does not
    twin = {**STUDY, "name": "twin", "arms": [STUDY["arms"][0], {**STUDY["arms"][0], "name": "gamma-0"}]}
    twin["arms"][1]["params"] = {"gamma": 0.0}
    twin_path = tmp_path / "twin.yaml"
    twin_path.write_text(yaml.safe_dump(twin))
    twin_id = f"twin-{os.getpid()}"
    cmd = [sys.executable, "-m", "saemerge", "study", "run", "--local", str(twin_path), "--id", twin_id]
    cmd += ["--workdir", str(workdir), "--bucket", bucket, "--max-runs", "1"]
    reused = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert reused.returncode == 0, reused.stdout[-3000:] + reused.stderr[-3000:]
    assert f"sae-global-b0-r0 is run {study_id}/sae-global-b0-r0" in reused.stdout
    assert "run gamma-0-b0-r0 (1;" in reused.stdout and "run sae-global-b0-r0 (" not in reused.stdout
    entries = {
        e["id"]: e for e in yaml.safe_load(storage.read_bytes(f"s3://{bucket}/studies/{twin_id}/study.yaml"))["entries"]
    }
    assert entries["sae-global-b0-r0"]["run_uri"] == f"s3://{bucket}/runs/{study_id}-sae-global-b0-r0"
    assert entries["sae-global-b0-r0"]["reused_from"] == f"{study_id}/sae-global-b0-r0"
    assert entries["gamma-0-b0-r0"]["status"] == "succeeded" and "reused_from" not in entries["gamma-0-b0-r0"]
    # its report counts only the wall time this study spent
    twin_out = tmp_path / "twin-report"
    rc = main(["study", "report", twin_id, "--bucket", bucket, "--workdir", str(workdir), "--out", str(twin_out)])
    assert rc == 0, capsys.readouterr().err
    spent = entries["gamma-0-b0-r0"]["seconds"]
    assert (
        f"Runs' wall time (sum): {spent:.0f} s (1 run reused from other studies, not counted)"
        in (twin_out / "report.md").read_text()
    )


def test_report_of_a_study_without_a_finished_run_is_one_line(s3_env, tmp_path, capsys):
    from saemerge.study.runner import StudyLayout, StudyRecord
    from saemerge.study.spec import parse_spec

    study_id = f"empty-{os.getpid()}"
    StudyRecord.open(StudyLayout("saemerge-test", study_id), parse_spec(STUDY))
    rc = main(["study", "report", study_id, "--bucket", "saemerge-test", "--workdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no finished run to report on yet" in err and len(err.strip().splitlines()) == 1
    assert not storage.exists(f"s3://saemerge-test/studies/{study_id}/report/report.md")
    rc = main(["study", "report", "no-such-study", "--bucket", "saemerge-test", "--workdir", str(tmp_path)])
    assert rc == 2 and "no study 'no-such-study'" in capsys.readouterr().err
