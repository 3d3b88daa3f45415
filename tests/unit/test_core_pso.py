"""PSO-Merging update and bookkeeping (SAE-SPEC §7)."""

from __future__ import annotations

import json

import pytest
import torch

from saemerge.core.pso import Best, PsoSwarm, initial_particles, pso_step

T = torch.tensor


def test_one_update_by_hand():
    x = T([1.0, 2.0])
    v = T([0.5, -1.0])
    pbest = T([2.0, 2.0])
    gbest = T([0.0, 4.0])
    x1, v1 = pso_step(x, v, pbest, gbest, r1=0.5, r2=0.25)
    # v' = 0.2*v + 2*0.5*(pbest-x) + 2*0.25*(gbest-x)
    #    = [0.1, -0.2] + [1, 0] + [-0.5, 1] = [0.6, 0.8]
    assert v1.tolist() == pytest.approx([0.6, 0.8])
    assert x1.tolist() == pytest.approx([1.6, 2.8])


def test_first_step_zero_velocity_and_custom_coefficients():
    x, pb, gb = T([1.0]), T([3.0]), T([5.0])
    x1, v1 = pso_step(x, None, pb, gb, 1.0, 1.0, w=0.9, c1=0.5, c2=0.25)
    # v' = 0 + 0.5*1*2 + 0.25*1*4 = 2
    assert v1.tolist() == [2.0] and x1.tolist() == [3.0]
    # at the optimum with zero velocity nothing moves
    x2, v2 = pso_step(gb, None, gb, gb, 0.3, 0.7)
    assert torch.equal(x2, gb) and v2.tolist() == [0.0]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dtype(dtype):
    x = T([1.0, 2.0]).to(dtype)
    x1, v1 = pso_step(x, None, x + 1, x + 2, 0.5, 0.5)
    assert x1.dtype == dtype and v1.dtype == dtype
    _, v32 = pso_step(x, None, x + 1, x + 2, 0.5, 0.5, velocity_dtype=torch.float32)
    assert v32.dtype == torch.float32
    assert x1.float().tolist() == [4.0, 5.0]  # 1 + 1*1 + 1*2


def test_coefficients_seeded_stable_in_unit_interval():
    s = PsoSwarm(["base", "e0"], seed=7)
    r = s.coefficients("e0", 1)
    assert r == PsoSwarm(["base", "e0"], seed=7).coefficients("e0", 1)
    assert r != s.coefficients("e0", 2) and r != s.coefficients("base", 1)
    assert r != PsoSwarm(["base", "e0"], seed=8).coefficients("e0", 1)
    vals = [v for p in ("base", "e0") for t in range(50) for v in s.coefficients(p, t)]
    assert all(0.0 <= v < 1.0 for v in vals)
    assert 0.35 < sum(vals) / len(vals) < 0.65
    # fixed value: changing the derivation would silently change PSO results
    assert PsoSwarm(["p"], seed=0).coefficients("p", 0) == pytest.approx((0.7233302484473526, 0.17410111772164047))


def test_bests_update_only_on_strict_improvement():
    s = PsoSwarm(initial_particles("base", ["e0", "e1"], ["e0-dare"]), seed=1)
    assert s.particles == ["base", "e0", "e1", "e0-dare"]
    s.observe_step({"e1": ("e1@0", 0.5), "base": ("base@0", 0.2), "e0": ("e0@0", 0.5)})
    # e0 comes before e1 in particle order, so e0 holds the tied global best
    assert s.gbest == Best("e0@0", 0.5)
    s.observe("e0", "e0@1", 0.4)  # worse: pbest unchanged
    assert s.pbest["e0"] == Best("e0@0", 0.5)
    s.observe("e0", "e0@2", 0.5)  # equal: unchanged
    assert s.pbest["e0"].checkpoint == "e0@0"
    s.observe("base", "base@1", 0.6)
    assert s.pbest["base"] == Best("base@1", 0.6) and s.gbest == Best("base@1", 0.6)
    with pytest.raises(KeyError):
        s.observe("nope", "x", 1.0)


def test_state_roundtrip_json():
    s = PsoSwarm(["a", "b"], seed=3)
    s.observe("a", "a@0", 0.1)
    s.observe("b", "b@0", 0.3)
    back = PsoSwarm.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s
    assert PsoSwarm.from_dict(PsoSwarm(["a"]).to_dict()).gbest is None
