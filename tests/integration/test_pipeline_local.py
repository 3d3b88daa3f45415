"""The pipeline end to end under kfp.local against the embedded S3 store: 2 generations on the
micro bench, interrupted after generation 0, resumed, finished without re-evaluating anything."""

import os
import shutil
import subprocess
import sys

import pytest

from saemerge import runlog, storage
from saemerge.runlog import RunLayout
from tests.support.microrun import MICRO_SAE, interrupt_at_first_generation

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARAMS = MICRO_SAE


def _run_args(workdir, bucket, *extra):
    return [
        sys.executable,
        "-m",
        "saemerge",
        "run",
        "--local",
        "--workdir",
        str(workdir),
        "--bench-size",
        "micro",
        "--steps",
        "2",
        "--bucket",
        bucket,
        *PARAMS,
        *extra,
    ]


def _cached_rows(run_uri: str) -> set:
    rows = set()
    for uri in storage.list_uris(storage.join(run_uri, "cache", "scores")):
        digest = uri.rsplit("/", 1)[-1].removesuffix(".parquet")
        for r in runlog.read_table(uri).to_pylist():
            rows.add((digest, r["task"], r["example_id"]))
    return rows


def _stage_tables(run_uri: str) -> list[str]:
    return [u for u in storage.list_uris(run_uri) if "/scores-" in u and u.endswith(".parquet")]


def test_interrupted_run_resumes_and_finishes_without_rescoring(s3_env, micro_bench, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(micro_bench, workdir / "bench" / "micro-seed0")
    bucket = "saemerge-test"
    run_id = f"resume-{os.getpid()}"
    run_uri = f"s3://{bucket}/runs/{run_id}"

    # 1. start, and interrupt (SIGINT, as Ctrl-C) once the run reports generation 0
    returncode, out = interrupt_at_first_generation(_run_args(workdir, bucket, "--run-id", run_id))
    assert returncode == 130, out
    assert "saemerge: interrupted" in out
    assert storage.exists(f"{run_uri}/gen-00/metrics.json")
    assert not storage.exists(f"{run_uri}/final/results.parquet")
    before = _cached_rows(run_uri)
    tables_before = set(_stage_tables(run_uri))  # kept by the rerun, which writes its own beside them
    assert before

    # 2. resume with no flag but where the run is: search, steps, bench and parameters come from
    # its run.json; finishes, prints the results table
    resume = [sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(workdir), "--bucket", bucket]
    done = subprocess.run([*resume, "--resume", run_id], capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for method in ("base", "expert:math", "expert:multilingual", "weight_average", "task_arithmetic", "ties", "sae"):
        assert f"\n{method} " in done.stdout
    assert "phases:" in done.stdout

    # 3. the run is complete in S3 ...
    for part in (
        "run.json",
        "init/population.parquet",
        "gen-00/population.parquet",
        "gen-01/population.parquet",
        "gen-01/offspring.parquet",
        "gen-01/metrics.json",
        "final/results.parquet",
        "final/report.md",
        "final/fitness.png",
        "final/schedule.png",
        "final/sparsity_vs_score.png",
    ):
        assert storage.exists(f"{run_uri}/{part}"), part
    population = RunLayout(run_uri).read_population(1)
    assert 1 <= len(population) <= 4
    for record in population:
        assert storage.exists(record["uri"])  # content-addressed model with its manifest

    # ... and nothing scored before the interruption was evaluated again
    fresh_after = set()
    for uri in set(_stage_tables(run_uri)) - tables_before:
        for r in runlog.read_table(uri).to_pylist():
            if r["fresh"]:
                fresh_after.add((r["content_hash"], r["task"], r["example_id"]))
    assert fresh_after, "the resumed run evaluated nothing (generation 1 must have been scored after resuming)"
    assert not (fresh_after & before)

    # 4. inspect reads the run
    shown = subprocess.run([sys.executable, "-m", "saemerge", "inspect", run_uri], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "init" in shown.stdout and "lineage of the best model" in shown.stdout
    assert len([line for line in shown.stdout.splitlines() if line.strip().startswith(("0 ", "1 "))]) == 2
