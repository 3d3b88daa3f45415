"""The PSO steps on tiny checkpoints and a local run directory: recipes, velocities, the bests and the step's records."""

from __future__ import annotations

import pytest
import torch

from saemerge import runlog, storage
from saemerge.checkpoint import CheckpointReader
from saemerge.core.pso import coefficients, dare_seed
from saemerge.runlog import GEN_METRICS, RunLayout
from saemerge.steps.pso import candidates, make_particle, move_particle, update_swarm

pytestmark = pytest.mark.integration


def _scored(records, fitness):
    """What the evaluate step returns: each record with its scores on the step's sample."""
    out = []
    for r in records:
        f = fitness[r["id"]]
        out.append(dict(r, scores={"saebench_math": f, "saebench_multilingual": f}, score=f, fitness=f, n_scored=12))
    return out


def test_a_swarm_for_two_steps(tmp_path, tiny_family):
    run, base = str(tmp_path / "run"), str(tiny_family["base"])
    specs = [
        {"particle": "base", "index": 0, "source": base, "drop_p": 0.0, "seed": 0},
        {"particle": "expert:e0", "index": 1, "source": str(tiny_family["expert0"]), "drop_p": 0.0, "seed": 0},
        {
            "particle": "expert:e0~dare1",
            "index": 2,
            "source": str(tiny_family["expert0"]),
            "drop_p": 0.8,
            "seed": float(dare_seed(0, "e0", 1)),
        },  # kfp carries numbers as doubles
    ]
    made = [make_particle(run, s, base_uri=base) for s in specs]
    assert [make_particle(run, s, base_uri=base) for s in specs] == made  # the recipes answer
    assert [m["particle"] for m in made] == ["base", "expert:e0", "expert:e0~dare1"]
    assert made[0]["sparsity"] == 1.0 and made[1]["sparsity"] < 0.6 < made[2]["sparsity"]
    assert made[2]["origin"] == "expert:e0~dare1 (DARE p=0.8)" and all(storage.exists(m["uri"]) for m in made)

    # step 0: the initial positions are the personal bests; the best of them is the global best
    fit0 = {made[0]["id"]: 0.2, made[1]["id"]: 0.5, made[2]["id"]: 0.4}
    cands = candidates(list(reversed(made)), [])
    assert [c["id"] for c in cands] == [m["id"] for m in made]  # particle order, each model once
    swarm, gbest, summary = update_swarm(run, 0, [], made, _scored(cands, fit0))
    assert gbest["id"] == made[1]["id"] and [s["pbest"]["id"] for s in swarm] == [m["id"] for m in made]
    assert set(GEN_METRICS) <= set(summary) and summary["generation"] == -1 and summary["accepted"] == 3
    assert summary["best_fitness"] == 0.5 and summary["mean_fitness"] == pytest.approx(1.1 / 3)
    layout = RunLayout(run)
    assert runlog.read_json(layout.metrics("init")) == summary

    # step 1: every particle moves (velocity from zero); the expert sits on both bests and stays put
    moved = [move_particle(run, s, 1, base_uri=base, seed=0, w=0.2, c1=2.0, c2=2.0) for s in swarm]
    assert moved == [move_particle(run, s, 1, base_uri=base, seed=0, w=0.2, c1=2.0, c2=2.0) for s in swarm]
    assert moved[1]["content_hash"] == made[1]["content_hash"]
    for m, s in zip(moved, swarm):
        assert (m["r1"], m["r2"]) == coefficients(0, s["particle"], 1)
        assert m["parents"] == [s["x"]["id"]] and m["born"] == 0 and m["step"] == 1
        v = CheckpointReader(m["velocity"]["uri"])  # a local run: URIs are paths
        assert {v.info(n).dtype for n in v.names} == {torch.float32}
        assert m["velocity"]["uri"] == layout.velocity(m["velocity"]["content_hash"])
    cands = candidates(moved, swarm)
    assert len(cands) == 5  # 3 new positions + the 3 personal bests, the expert's being its new position
    # on step 1's sample the base's move beats its personal best, the DARE particle's does not
    fit1 = {c["id"]: f for c, f in zip(cands, [0.3, 0.45, 0.35, 0.25, 0.4])}
    swarm1, gbest1, summary1 = update_swarm(run, 1, swarm, moved, _scored(cands, fit1))
    assert [s["pbest"]["id"] for s in swarm1] == [moved[0]["id"], made[1]["id"], made[2]["id"]]
    assert gbest1["id"] == made[1]["id"] and gbest1["fitness"] == 0.45  # re-scored on step 1's sample
    assert summary1["accepted"] == 1 and summary1["offspring"] == 3 and summary1["generation"] == 0
    assert all(s["velocity"] == m["velocity"] for s, m in zip(swarm1, moved))

    # the records: positions (accepted or not, and why), personal bests, the swarm table
    offspring = layout.read_population(0, "offspring")
    assert [r["status"] for r in offspring] == ["accepted", "rejected", "rejected"]
    assert "beats its personal best on this step's sample (0.3000 vs 0.2500)" in offspring[0]["reason"]
    assert {r["id"] for r in layout.read_population(0)} == {moved[0]["id"], made[1]["id"], made[2]["id"]}
    table = runlog.read_table(layout.swarm(0)).to_pylist()
    assert [r["improved"] for r in table] == [True, False, False]
    assert all(r["step"] == 1 and r["gbest_id"] == made[1]["id"] for r in table)
    assert table[0]["velocity_hash"] == moved[0]["velocity"]["content_hash"]
    assert runlog.read_table(layout.swarm("init")).column("velocity_hash").to_pylist() == [None] * 3
