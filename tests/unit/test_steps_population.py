"""The population steps on a local run directory: pairing items, archive update records."""

import json

import pytest

from saemerge import runlog
from saemerge.core.schedule import cyclic_schedule
from saemerge.errors import SaeMergeError
from saemerge.runlog import RunLayout
from saemerge.steps.population import archive_update, pair_parents, schedule_and_pair, scheduled_sparsity
from saemerge.steps.settings import run_config


def record(i: int, fitness: float, sparsity: float = 0.1, parents=(), born=-1) -> dict:
    digest = f"{i:02d}" * 32
    return {
        "id": runlog.member_id(digest),
        "content_hash": digest,
        "uri": f"/models/{digest}",
        "parents": list(parents),
        "origin": "test",
        "born": born,
        "sparsity": sparsity,
        "s_t": sparsity,
        "score": fitness - 0.05 * sparsity,
        "fitness": fitness,
        "scores": {"saebench_math": fitness},
        "n_scored": 4,
        "status": "candidate",
    }


def test_pairs_are_self_contained_and_seeded():
    archive = [record(i, 0.1 * i) for i in range(1, 6)]
    pairs = pair_parents("/unused", 3, archive, 0.35, seed=7)
    assert len(pairs) == 2  # 5 members: one sits out
    assert pairs == pair_parents("/unused", 3, archive, 0.35, seed=7)
    other = pair_parents("/unused", 4, archive, 0.35, seed=7)  # another generation, another permutation
    assert [(p["a"]["id"], p["b"]["id"]) for p in pairs] != [(p["a"]["id"], p["b"]["id"]) for p in other]
    for i, p in enumerate(pairs):
        assert p["index"] == i and p["s_t"] == 0.35 and p["generation"] == 3
        assert p["a"]["uri"] and p["b"]["score"] is not None  # everything a merge step needs
        assert sorted(p["archive_hashes"]) == sorted(r["content_hash"] for r in archive)
    json.dumps(pairs)  # kfp parameters must be JSON


def test_the_schedule_step_pairs_at_s_t_with_the_runs_settings(recorded_run):
    """The schedule step reads the schedule and the seed from run.json, not from its inputs."""
    schedule = dict(steps=12, s_min=0.2, s_max=0.8, t0=4, t_mult=2)
    run = recorded_run(**schedule, seed=7)
    archive = [record(i, 0.1 * i) for i in range(1, 6)]
    s_t = cyclic_schedule(**schedule, reverse=False)[5]
    assert schedule_and_pair(run, 5, archive) == pair_parents(run, 5, archive, s_t, seed=7)
    assert scheduled_sparsity(run_config(run), 5) == s_t and scheduled_sparsity(run_config(run), -1) == 0.0
    reverse = recorded_run(**schedule, reverse=True)
    assert schedule_and_pair(reverse, 5, archive)[0]["s_t"] == cyclic_schedule(**schedule, reverse=True)[5] != s_t


def test_a_step_before_the_init_step_names_the_missing_run_json(tmp_path):
    with pytest.raises(SaeMergeError, match=r"run.json: not written \(the run's init step writes it"):
        schedule_and_pair(str(tmp_path / "run"), 0, [record(1, 0.1), record(2, 0.2)])


def test_archive_update_records_the_generation(tmp_path):
    run = str(tmp_path / "run")
    initial, summary = archive_update(
        run, -1, 0.0, [], [record(i, 0.1 * i) for i in range(1, 7)], 4, "local_then_global"
    )
    assert [r["fitness"] for r in initial] == pytest.approx([0.6, 0.5, 0.4, 0.3])
    assert summary["accepted"] == 4 and summary["offspring"] == 6
    child = record(9, 0.45, parents=(initial[0]["id"], initial[3]["id"]), born=0)
    twin = dict(record(9, 0.0), status="discarded", reason="identical")
    new, summary = archive_update(run, 0, 0.225, initial, [child, twin], 4, "local_then_global")
    assert child["id"] in [r["id"] for r in new] and initial[3]["id"] not in [r["id"] for r in new]
    assert summary["accepted"] == 1 and summary["s_t"] == 0.225
    layout = RunLayout(run)
    offspring = layout.read_population(0, name="offspring")
    assert {r["status"] for r in offspring} == {"accepted", "discarded"}
    assert [r["id"] for r in layout.read_population(0)] == [r["id"] for r in new]
    assert runlog.read_json(f"{run}/gen-00/metrics.json")["best_fitness"] == pytest.approx(0.6)
    assert layout.generations() == [0] and layout.stages() == ["init", "gen-00"]
    with pytest.raises(SaeMergeError, match="no run.json"):
        runlog.describe_run(run)
