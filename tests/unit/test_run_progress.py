"""A run's progress from its own records (saemerge.progress): what `submit --wait` and
`saemerge inspect` show however far KFP's task list got."""

from __future__ import annotations

import socket

import pytest

from saemerge.cli import main
from saemerge.progress import RunProgress, progress_line
from saemerge.runlog import RunLayout, write_json


def _metrics(generation: int, best: float) -> dict:
    return {
        "generation": generation,
        "s_t": 0.1,
        "best_fitness": best,
        "mean_fitness": best - 0.1,
        "best_score": best,
        "mean_sparsity": 0.3,
        "accepted": 1,
        "offspring": 4,
    }


@pytest.fixture
def run(tmp_path) -> RunLayout:
    layout = RunLayout(str(tmp_path / "r1"))
    write_json(layout.run_json, {"config": {"steps": 3, "search": "sae"}})
    return layout


def test_each_poll_reports_what_was_recorded_since_the_last(run):
    progress = RunProgress(run.root)
    assert progress.poll() == []
    write_json(run.metrics(-1), _metrics(-1, 0.5))
    write_json(run.metrics(0), _metrics(0, 0.6))
    assert progress.poll() == [
        "progress: initial population: best F 0.5000, accepted 1/4, mean ρ 0.300",
        "progress: generation 1/3 (gen-00): best F 0.6000, accepted 1/4, mean ρ 0.300",
    ]
    assert progress.poll() == []  # nothing new, nothing said
    write_json(run.metrics(1), _metrics(1, 0.7))
    assert progress.poll() == ["progress: generation 2/3 (gen-01): best F 0.7000, accepted 1/4, mean ρ 0.300"]
    assert progress.done_generations == 2


def test_unreadable_records_are_said_once(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SAEMERGE_S3_MAX_ATTEMPTS", "1")
    progress = RunProgress("s3://saemerge/runs/r1", generations=12)
    (line,) = progress.poll()
    assert line.startswith("progress: cannot read the run's records at s3://saemerge/runs/r1 (")
    assert line.endswith("; KFP's state only") and "\n" not in line
    assert progress.poll() == []  # said once; not tried again


def test_inspect_shows_the_progress_line(run, capsys):
    write_json(run.metrics(-1), _metrics(-1, 0.5))
    write_json(run.metrics(0), _metrics(0, 0.6))
    assert progress_line(run.root) == (
        "progress (from the run's records): initial population recorded; 1 of 3 generations recorded; "
        "final results not yet"
    )
    assert main(["inspect", run.root]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == progress_line(run.root)
    assert "gen" in out.splitlines()[1]  # then the generation table


def test_the_local_runs_generation_line_is_rendered_in_run_metrics():
    """``saemerge run --local`` (the demo) prints this line under each finished generation, byte for byte."""
    from saemerge.run.metrics import metrics_detail

    m = {"generation": 0, "s_t": 0.5, "best_fitness": 0.51234, "mean_fitness": 0.4, "mean_sparsity": 0.8123}
    m |= {"accepted": 3, "offspring": 4, "best.saebench_multilingual": 0.4333, "best.saebench_math": 0.6}
    assert metrics_detail(m) == (
        "best fitness 0.5123  mean 0.4000  [saebench_math 0.600, saebench_multilingual 0.433]  mean ρ 0.812  accepted 3/4"
    )
