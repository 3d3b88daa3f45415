"""The M2N2 search end to end under kfp.local against the embedded S3 store: 2 generations on the
micro bench, interrupted after generation 0, resumed, finished without re-scoring anything; and
a budget below one generation refused before anything starts."""

import inspect
import os
import shutil
import subprocess
import sys

import pytest

from saemerge import runlog, storage
from saemerge.errors import SaeMergeError
from saemerge.runlog import RunLayout
from tests.support.microrun import MICRO_SAE, interrupt_at_first_generation

pytestmark = pytest.mark.integration

PARAMS = [
    *MICRO_SAE,
    "--param",
    "s_min=0.5",
    "--param",
    "s_max=0.5",  # 2 variants per expert, {0, 0.5}: a full archive of 4
    "--param",
    "m2n2_children=2",
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
        "m2n2",
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
        rows |= {(digest, r["task"], r["example_id"]) for r in runlog.read_table(uri).to_pylist()}
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
def test_m2n2_run_resumes_after_an_interruption_without_rescoring(s3_env, micro_bench, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(micro_bench, workdir / "bench" / "micro-seed0")
    bucket = "saemerge-test"
    run_id = f"m2n2-resume-{os.getpid()}"
    run_uri = f"s3://{bucket}/runs/{run_id}"

    # 1. start, and interrupt (SIGINT, as Ctrl-C) once the run reports generation 0
    returncode, out = interrupt_at_first_generation(_run_args(workdir, bucket, "--run-id", run_id))
    assert returncode == 130, out
    assert storage.exists(f"{run_uri}/gen-00/metrics.json")
    assert not storage.exists(f"{run_uri}/final/results.parquet")
    before = _cached_rows(run_uri)
    tables_before = _score_tables(run_uri)
    assert before

    # 2. resume: finishes and prints the table with M2N2's row
    done = subprocess.run(_run_args(workdir, bucket, "--resume", run_id), capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for method in ("base", "expert:math", "expert:multilingual", "m2n2"):
        assert f"\n{method} " in done.stdout
    assert "\nsae " not in done.stdout

    # 3. an M2N2 run in S3: run.json says so, two generations of children competing by shared fitness
    layout = RunLayout(run_uri)
    assert layout.read_config()["search"] == "m2n2"
    for g in (0, 1):
        metrics = runlog.read_json(layout.metrics(g))
        assert metrics["offspring"] == 2 and "best_shared_fitness" in metrics
        children = layout.read_population(g, "offspring")
        assert {c["origin"].split()[0] for c in children} == {"m2n2"}
        assert all(len(c["parents"]) == 2 and c["status"] in ("accepted", "rejected", "discarded") for c in children)
        assert all("shared fitness" in c["reason"] or c["status"] == "discarded" for c in children)
        population = layout.read_population(g)
        assert 1 <= len(population) <= 4 and all(storage.exists(r["uri"]) for r in population)
    assert storage.exists(f"{run_uri}/final/report.md") and storage.exists(f"{run_uri}/final/compute.json")
    crossover_records = [u for u in storage.list_uris(layout.compute_dir) if "/crossover/" in u]
    assert len(crossover_records) >= 2  # generation 1's children at least (generation 0's may be from before)

    # 4. nothing scored before the interruption was evaluated again
    fresh_after = _fresh_rows(run_uri, skip=tables_before)
    assert fresh_after, "the resumed run evaluated nothing (generation 1 must have been scored after resuming)"
    assert not (fresh_after & before)

    # 5. inspect reads it
    shown = subprocess.run([sys.executable, "-m", "saemerge", "inspect", run_uri], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "compute:" in shown.stdout and "lineage of the best model" in shown.stdout


def test_a_budget_below_one_generation_is_refused_before_anything_starts(tmp_path):
    workdir = tmp_path / "work"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "saemerge",
            "run",
            "--local",
            "--search",
            "m2n2",
            "--workdir",
            str(workdir),
            "--param",
            "m2n2_children=0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip() == "saemerge: error: m2n2_children 0: must be at least 1"
    assert not workdir.exists()  # no store started, no bench built, nothing written


def test_the_init_step_refuses_it_too(tmp_path):
    from saemerge.components.m2n2_init import m2n2_init
    from saemerge.config import RunConfig

    config = RunConfig.from_params(
        {
            "run_uri": str(tmp_path / "run"),
            "experts": ["/m/math"],
            "base_uri": "/m/base",
            "data_uri": "/data",
            "search": "m2n2",
        }
    ).to_json()
    args = {name: config[name] for name in inspect.signature(m2n2_init).parameters if name in config}
    with pytest.raises(SaeMergeError) as err:
        m2n2_init(**{**args, "m2n2_children": 0.0}, metrics=None)
    assert str(err.value) == "m2n2_children 0.0: must be at least 1"
    assert not (tmp_path / "run").exists()
