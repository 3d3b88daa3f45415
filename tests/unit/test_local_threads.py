"""Thread counts of local steps: one per step for merges side by side, the idle cores for evaluation."""

from __future__ import annotations

from saemerge import cpus
from saemerge.cpus import EVAL_THREADS_ENV, IDLE
from saemerge.pipeline import local
from saemerge.study.local import child_environment


def test_local_steps_take_one_thread_per_two_cores_and_evaluation_the_idle_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(EVAL_THREADS_ENV, raising=False)
    monkeypatch.setattr(local.os, "cpu_count", lambda: 8)
    env = local.step_environment()
    assert env["OMP_NUM_THREADS"] == "4" and env[EVAL_THREADS_ENV] == IDLE
    monkeypatch.setenv(EVAL_THREADS_ENV, "2")  # the user's setting wins
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    env = local.step_environment()
    assert env["OMP_NUM_THREADS"] == "3" and env[EVAL_THREADS_ENV] == "2"


def test_study_runs_side_by_side_each_evaluate_with_their_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(cpus, "usable_cores", lambda: 4)
    assert EVAL_THREADS_ENV not in child_environment({"A": "1"}, parallel=1)  # alone: the idle cores
    assert child_environment({"A": "1"}, parallel=2) == {"A": "1", EVAL_THREADS_ENV: "2"}
    assert child_environment({}, parallel=3)[EVAL_THREADS_ENV] == "1"
    assert child_environment({EVAL_THREADS_ENV: "4"}, parallel=2)[EVAL_THREADS_ENV] == "4"
