"""PSO-Merging (SAE-SPEC §7): the update, the particles and their DARE seeds, the bests, on hand-computed values."""

from __future__ import annotations

import hashlib

import pytest
import torch

from saemerge.core.pso import ParticleSpec, Scored, coefficients, dare_seed, initial_particles, pso_step, update_bests

T = torch.tensor


def test_one_update_by_hand():
    x, v, pbest, gbest = T([1.0, 2.0]), T([0.5, -1.0]), T([2.0, 2.0]), T([0.0, 4.0])
    x1, v1 = pso_step(x, v, pbest, gbest, r1=0.5, r2=0.25)
    # v' = 0.2*v + 2*0.5*(pbest-x) + 2*0.25*(gbest-x) = [0.1, -0.2] + [1, 0] + [-0.5, 1] = [0.6, 0.8]
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


def _fitness(centre: float):
    """A sample's fitness: the closer to `centre`, the better (each step's sample has its own)."""
    return lambda x: -abs(x - centre)


def test_two_steps_with_bests_compared_on_each_steps_sample():
    """Two particles A (x=0) and B (x=2), w=0.5, c1=1, c2=2, by hand.

    step 0, sample f0 = -|x-3|: A -3, B -1 -> pbest A@0, B@0; gbest B@0 (x=2).
    step 1, r_A = (0.5, 0.25), r_B = (0.5, 0.5):
      A: v = 0 + 1*0.5*(0-0) + 2*0.25*(2-0) = 1, x = 1;  B: v = 0, x = 2 (it sits on both bests).
      sample f1 = -|x-3|: A@1 -2 > A@0 -3 -> pbest A@1; B@1 -1 = B@0 -1 -> a tie keeps B@0.
      gbest: incumbent B@0 -1 vs pbests (-2, -1): stays B@0.
    step 2, r_A = (1, 0.5), r_B = (0.25, 0.5):
      A: v = 0.5*1 + 1*1*(1-1) + 2*0.5*(2-1) = 1.5, x = 2.5;  B: v = 0, x = 2.
      sample f2 = -|x-2.5|: the bests are re-scored there: A@1 -1.5 (was -2), B@0 -0.5.
      A@2 0 > -1.5 -> pbest A@2; B@2 -0.5 = -0.5 -> keeps B@0; gbest A@2 (0 > -0.5).
    """
    w, c1, c2 = 0.5, 1.0, 2.0
    x = {"A": T([0.0]), "B": T([2.0])}
    v: dict[str, torch.Tensor | None] = {"A": None, "B": None}
    models = {"A@0": x["A"], "B@0": x["B"]}
    f0 = _fitness(3.0)
    bests = update_bests(["A", "B"], {p: Scored(f"{p}@0", f0(x[p].item())) for p in "AB"})
    assert bests.pbest == {"A": Scored("A@0", -3.0), "B": Scored("B@0", -1.0)}
    assert bests.gbest == Scored("B@0", -1.0) and bests.improved == ("A", "B")

    rs = {1: {"A": (0.5, 0.25), "B": (0.5, 0.5)}, 2: {"A": (1.0, 0.5), "B": (0.25, 0.5)}}
    samples = {1: _fitness(3.0), 2: _fitness(2.5)}
    expected_v = {1: {"A": 1.0, "B": 0.0}, 2: {"A": 1.5, "B": 0.0}}
    expected_x = {1: {"A": 1.0, "B": 2.0}, 2: {"A": 2.5, "B": 2.0}}
    for step in (1, 2):
        for p in "AB":
            pb, gb = models[bests.pbest[p].model], models[bests.gbest.model]
            x[p], v[p] = pso_step(x[p], v[p], pb, gb, *rs[step][p], w=w, c1=c1, c2=c2)
            models[f"{p}@{step}"] = x[p]
            assert v[p].item() == pytest.approx(expected_v[step][p]) and x[p].item() == pytest.approx(
                expected_x[step][p]
            )
        f = samples[step]
        on_sample = {m: Scored(m, f(t.item())) for m, t in models.items()}  # every model re-scored on this sample
        bests = update_bests(
            ["A", "B"],
            {p: on_sample[f"{p}@{step}"] for p in "AB"},
            {p: on_sample[bests.pbest[p].model] for p in "AB"},
            on_sample[bests.gbest.model],
        )
        if step == 1:
            assert bests.pbest == {"A": Scored("A@1", -2.0), "B": Scored("B@0", -1.0)}
            assert bests.gbest == Scored("B@0", -1.0) and bests.improved == ("A",)
    assert bests.pbest == {"A": Scored("A@2", 0.0), "B": Scored("B@0", -0.5)}
    assert bests.gbest == Scored("A@2", 0.0) and bests.improved == ("A",)


def test_bests_ties_keep_the_incumbent_then_particle_order():
    # step 0: a tie for the global best goes to the first particle in order
    assert update_bests(["b", "a"], {"a": Scored("a0", 0.5), "b": Scored("b0", 0.5)}).gbest == Scored("b0", 0.5)
    # later: a challenger equal to the incumbent does not replace it; among equal challengers, the first
    bests = update_bests(
        ["a", "b", "c"],
        {"a": Scored("a1", 0.7), "b": Scored("b1", 0.7), "c": Scored("c1", 0.1)},
        {"a": Scored("a0", 0.1), "b": Scored("b0", 0.1), "c": Scored("c0", 0.7)},
        Scored("c0", 0.7),
    )
    assert bests.gbest == Scored("c0", 0.7) and bests.improved == ("a", "b")
    bests = update_bests(
        ["a", "b"],
        {"a": Scored("a1", 0.8), "b": Scored("b1", 0.8)},
        {"a": Scored("a0", 0.1), "b": Scored("b0", 0.1)},
        Scored("b0", 0.1),
    )
    assert bests.gbest == Scored("a1", 0.8)
    with pytest.raises(KeyError, match="'b'"):
        update_bests(["a", "b"], {"a": Scored("a1", 0.8)})
    with pytest.raises(ValueError, match="global best"):
        update_bests(["a"], {"a": Scored("a1", 0.8)}, {"a": Scored("a0", 0.1)})


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_velocity_is_float32_whatever_the_model_dtype(dtype):
    x = T([1.0, 2.0]).to(dtype)
    x1, v1 = pso_step(x, None, x + 1, x + 2, 0.5, 0.5)
    assert x1.dtype == dtype and v1.dtype == torch.float32
    assert x1.float().tolist() == [4.0, 5.0]  # 1 + 1*1 + 1*2
    # a velocity finer than the model's precision survives to the next step: 1 + 2^-12 is not a bf16 value
    v = T([1.0 + 2.0**-12])
    _, v2 = pso_step(T([0.0]).to(dtype), v, T([0.0]).to(dtype), T([0.0]).to(dtype), 0.0, 0.0, w=1.0)
    assert v2.dtype == torch.float32 and v2.item() == 1.0 + 2.0**-12


def test_coefficients_seeded_stable_in_unit_interval():
    r = coefficients(7, "expert:math", 1)
    assert r == coefficients(7, "expert:math", 1)
    assert (
        r != coefficients(7, "expert:math", 2)
        and r != coefficients(7, "base", 1)
        and r != coefficients(8, "expert:math", 1)
    )
    vals = [v for p in ("base", "e0") for t in range(50) for v in coefficients(7, p, t)]
    assert all(0.0 <= v < 1.0 for v in vals)
    assert 0.35 < sum(vals) / len(vals) < 0.65
    # fixed value: changing the derivation would silently change PSO results
    assert coefficients(0, "p", 0) == pytest.approx((0.7233302484473526, 0.17410111772164047))


def test_initial_particles_and_their_dare_seeds():
    specs = initial_particles(
        "s3://b/base", [("math", "s3://b/math"), ("ml", "s3://b/ml")], copies=2, drop_p=0.8, seed=3
    )
    assert [s.name for s in specs] == [
        "base",
        "expert:math",
        "expert:ml",
        "expert:math~dare1",
        "expert:math~dare2",
        "expert:ml~dare1",
        "expert:ml~dare2",
    ]
    assert specs[0] == ParticleSpec("base", "s3://b/base", 0.0, 0)
    assert specs[1] == ParticleSpec("expert:math", "s3://b/math", 0.0, 0)
    assert [s.source for s in specs[3:]] == ["s3://b/math"] * 2 + ["s3://b/ml"] * 2
    assert all(s.drop_p == 0.8 for s in specs[3:])
    # each copy its own seed, from (run seed, expert, copy)
    assert [s.seed for s in specs[3:]] == [
        dare_seed(3, "math", 1),
        dare_seed(3, "math", 2),
        dare_seed(3, "ml", 1),
        dare_seed(3, "ml", 2),
    ]
    seeds = {dare_seed(s, e, c) for s in (0, 1) for e in ("math", "ml") for c in (1, 2)}
    assert len(seeds) == 8
    # exact in a double (kfp carries numbers as doubles), and fixed: a new derivation changes every PSO run
    assert all(0 <= s < 2**53 and float(s) == s for s in seeds)
    digest = hashlib.sha256(b"pso-dare\x000\x00math\x001").digest()
    assert dare_seed(0, "math", 1) == int.from_bytes(digest[:8], "little") >> 12 == 3325262373904801
    # no base, no copies: the experts alone
    assert [s.name for s in initial_particles(None, [("math", "u")], copies=0, drop_p=0.8, seed=0)] == ["expert:math"]
