"""`saemerge run --local --resume RUN` takes the run's settings from its run.json: a flag given
beside it that disagrees is refused in one line before the bench is built or the pipeline started;
a new run naming an existing run of another configuration is refused the same way."""

import subprocess
import sys

import pytest

from saemerge import runlog
from saemerge.pipeline.local import LocalRun, recorded_bench
from saemerge.runlog import RunLayout

pytestmark = pytest.mark.integration

BUCKET = "saemerge-test"


def _record(run_id: str) -> None:
    config = LocalRun(run_id=run_id, bench_size="micro", steps=2, bucket=BUCKET, params={"archive_size": 4}).config()
    runlog.write_json(RunLayout(config.run_uri).run_json, {"config": config.to_json(), "experts": config.experts})


def _run(workdir, *args):
    cmd = [sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(workdir), "--bucket", BUCKET, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--steps", "12"], "--steps 12: run {run} was started with 2 ("),
        (["--search", "pso"], "--search pso: run {run} was started with sae ("),
        (["--bench-size", "tiny"], "--bench-size tiny: run {run} was started with micro ("),
        (["--seed", "3"], "--seed 3: run {run} was started with 0 ("),
        (["--param", "archive_size=6"], "--param archive_size 6: run {run} was started with 4 ("),
        (["--param", "s_min=-1"], "--param s_min -1: must be at least 0"),
    ],
)
def test_a_flag_that_disagrees_with_the_record_is_refused_before_anything_is_built(
    s3_env, tmp_path, request, flags, line
):
    run_id = f"rec-{request.node.callspec.id}".replace("[", "-").replace("]", "")[:60]
    run_id = "".join(c if c.isalnum() or c == "-" else "-" for c in run_id)
    _record(run_id)
    done = _run(tmp_path / "work", "--resume", run_id, *flags)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [x for x in done.stderr.splitlines() if x.startswith("saemerge: error:")]
    assert len(errors) == 1 and line.format(run=run_id) in errors[0], done.stderr
    assert "new run" not in done.stderr and "new run id" not in done.stderr
    assert not (tmp_path / "work" / "bench").exists()  # nothing built
    assert not (tmp_path / "work" / "runs" / run_id / "kfp.log").exists()  # nothing started


def test_resume_of_a_run_that_is_not_there_names_where_it_looked(s3_env, tmp_path):
    done = _run(tmp_path / "work", "--resume", "no-such-run")
    assert done.returncode == 2
    assert f"--resume no-such-run: no run at s3://{BUCKET}/runs/no-such-run" in done.stderr
    assert "new run" not in done.stderr


def test_a_new_run_naming_a_run_of_another_configuration_is_refused_first(s3_env, tmp_path):
    _record("rec-fresh")
    done = _run(
        tmp_path / "work", "--run-id", "rec-fresh", "--bench-size", "micro", "--steps", "3", "--param", "archive_size=4"
    )
    assert done.returncode == 2, done.stderr
    assert "--run-id rec-fresh: that run exists" in done.stderr and "with another steps (2, here 3)" in done.stderr
    assert "saemerge run --local --resume rec-fresh" in done.stderr
    assert not (tmp_path / "work" / "bench").exists()


def test_the_bench_is_read_back_from_the_recorded_data_uri():
    config = LocalRun(run_id="r", bench_size="micro", seed=2, bench_seed=5, bucket="b").config()
    size, seed, version = recorded_bench(config)
    assert (size, seed) == ("micro", 5) and config.seed == 2
    mine = LocalRun(run_id="r", params={"data_uri": "s3://elsewhere/data"}).config()
    assert recorded_bench(mine) is None
