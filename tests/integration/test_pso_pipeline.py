"""The PSO search end to end under kfp.local against the embedded S3 store: 2 steps on the micro bench,
interrupted after the first step, resumed, finished without re-scoring anything; and a swarm too small
to run refused before anything starts."""

import os
import shutil
import subprocess
import sys

import pytest

from saemerge import runlog, storage
from saemerge.runlog import RunLayout
from tests.support.microrun import MICRO_SIZES, interrupt_at_first_generation

pytestmark = pytest.mark.integration

# Small and fast: 4 particles (the two experts and one DARE copy of each), no baseline merges.
PARAMS = [
    *MICRO_SIZES,
    "--param",
    "pso_include_base=false",
    "--param",
    "baselines=[]",
]


def _run_args(workdir, bucket, *extra):
    return [
        sys.executable,
        "-m",
        "saemerge",
        "run",
        "--local",
        "--search",
        "pso",
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


def _score_tables(run_uri: str) -> set:
    return {u for u in storage.list_uris(run_uri) if "/scores-" in u and u.endswith(".parquet")}


def _fresh_rows(run_uri: str, skip: set = frozenset()) -> set:
    """Rows marked fresh in the stage tables, leaving out `skip` (tables an earlier attempt wrote:
    a rerun keeps them and writes its own beside them)."""
    rows = set()
    for uri in sorted(_score_tables(run_uri) - set(skip)):
        rows |= {
            (r["content_hash"], r["task"], r["example_id"]) for r in runlog.read_table(uri).to_pylist() if r["fresh"]
        }
    return rows


@pytest.mark.slow
def test_pso_run_is_interrupted_resumed_and_rescores_nothing(s3_env, micro_bench, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(micro_bench, workdir / "bench" / "micro-seed0")
    bucket = "saemerge-test"
    run_id = f"pso-{os.getpid()}"
    run_uri = f"s3://{bucket}/runs/{run_id}"
    layout = RunLayout(run_uri)

    # 1. start, and interrupt (SIGINT, as Ctrl-C) once the run reports its first update step
    returncode, out = interrupt_at_first_generation(_run_args(workdir, bucket, "--run-id", run_id), "its first step")
    assert returncode == 130, out
    assert "initial population" in out
    assert storage.exists(layout.metrics(0)) and not storage.exists(layout.final("results.parquet"))
    before = _cached_rows(run_uri)
    tables_before = _score_tables(run_uri)
    assert before

    # 2. resume: finishes, prints the results table with the search's row
    done = subprocess.run(_run_args(workdir, bucket, "--resume", run_id), capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for method in ("base", "expert:math", "expert:multilingual", "pso"):
        assert f"\n{method} " in done.stdout
    assert "phases:" in done.stdout

    # 3. the run is complete: per step the swarm, its bests and its metrics; velocities in float32
    assert runlog.read_json(layout.run_json)["config"]["search"] == "pso"
    for where in ("init", "gen-00", "gen-01"):
        for part in ("swarm.parquet", "population.parquet", "offspring.parquet", "metrics.json"):
            assert storage.exists(f"{run_uri}/{where}/{part}"), f"{where}/{part}"
    swarm = runlog.read_table(layout.swarm(1)).to_pylist()
    assert [r["particle"] for r in swarm] == [
        "expert:math",
        "expert:multilingual",
        "expert:math~dare1",
        "expert:multilingual~dare1",
    ]
    assert all(r["step"] == 2 and storage.exists(r["velocity_uri"]) for r in swarm)
    best = runlog.read_json(layout.final("best.json"))
    assert best["id"] == swarm[0]["gbest_id"]
    results = {r["method"]: r for r in layout.read_results()}
    assert results["pso"]["id"] == best["id"]
    compute = runlog.read_json(layout.final("compute.json"))
    assert compute["by_kind"]["pso_move"]["steps"] >= 4 + 2 * 4  # particles + two steps of moves (+ resumed ones)

    # ... and nothing scored before the interruption was evaluated again
    fresh_after = _fresh_rows(run_uri, skip=tables_before)
    assert fresh_after, "the resumed run evaluated nothing (step 2 must have been scored after resuming)"
    assert not (fresh_after & before)

    # 4. inspect reads the run: init and the two steps
    shown = subprocess.run([sys.executable, "-m", "saemerge", "inspect", run_uri], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "lineage of the best model" in shown.stdout
    assert len([line for line in shown.stdout.splitlines() if line.strip().startswith(("init ", "0 ", "1 "))]) == 3


def test_a_swarm_of_one_particle_is_refused_before_anything_starts(tmp_path):
    workdir = tmp_path / "work"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "saemerge",
            "run",
            "--local",
            "--search",
            "pso",
            "--workdir",
            str(workdir),
            "--param",
            "pso_dare_copies=0",
            "--param",
            "pso_include_base=false",
            "--param",
            'experts=["s3://nowhere/models/math"]',
            "--param",
            "base_uri=s3://nowhere/base",
            "--param",
            "data_uri=/nonexistent/data",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip() == (
        "saemerge: error: pso_dare_copies 0, pso_include_base false: 1 particle; a swarm needs at least 2"
    )
    assert out.stdout == ""
    assert not workdir.exists()  # no store started, no bench built, nothing written
