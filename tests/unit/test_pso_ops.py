"""PSO on tiny real checkpoints: initial particles (copy, DARE), moves, float32 velocities, row blocks."""

from __future__ import annotations

import pytest
import torch

from saemerge.checkpoint import CheckpointReader
from saemerge.core.baselines import dare, tensor_generator
from saemerge.core.pso import dare_seed, pso_step
from saemerge.ops import checkpoint_content_hash, checkpoint_sparsity, merge_checkpoints
from saemerge.ops.pso import init_particle_checkpoint, pso_move_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py

WHOLE, BLOCK = 10**9, 100  # 100 entries: 3 rows of 32, dividing no row count of the tiny models


@pytest.fixture(params=["tiny_family", "tiny_family_bf16"])
def family(request):
    return request.getfixturevalue(request.param)


def test_a_plain_particle_is_its_checkpoint(family, tmp_path):
    out = init_particle_checkpoint(family["expert0"], tmp_path / "p", base=family["base"])
    assert out["content_hash"] == checkpoint_content_hash(family["expert0"])
    assert out["sparsity"] == pytest.approx(checkpoint_sparsity(family["expert0"], base=family["base"])["global"])
    base = init_particle_checkpoint(family["base"], tmp_path / "b", base=family["base"])
    assert base["content_hash"] == checkpoint_content_hash(family["base"]) and base["sparsity"] == 1.0


def test_a_dare_particle_is_dare_of_its_expert_alone(family, tmp_path):
    seed = dare_seed(0, "expert0", 1)
    out = init_particle_checkpoint(family["expert0"], tmp_path / "d", base=family["base"], drop_p=0.8, seed=seed)
    blocks = init_particle_checkpoint(
        family["expert0"], tmp_path / "db", base=family["base"], drop_p=0.8, seed=seed, block_elems=BLOCK
    )
    assert blocks == out  # row blocks draw the whole tensor's mask
    base, expert, got = (CheckpointReader(p) for p in (family["base"], family["expert0"], tmp_path / "d"))
    for name in expert.names:  # every tensor, embeddings included (SAE-SPEC §7)
        want = dare(base.get(name), [expert.get(name)], 0.8, tensor_generator(seed, name))
        assert torch.equal(got.get(name), want), name
    assert out["sparsity"] == pytest.approx(checkpoint_sparsity(tmp_path / "d", base=family["base"])["global"])
    assert 0.85 < out["sparsity"] < 0.95  # the tiny experts' deltas are half zeros already; 0.5 + 0.5*0.8 = 0.9
    other = init_particle_checkpoint(
        family["expert0"], tmp_path / "d2", base=family["base"], drop_p=0.8, seed=dare_seed(0, "expert0", 2)
    )
    assert other["content_hash"] != out["content_hash"]  # another copy, another mask


def test_a_dare_particle_matches_the_dare_linear_baseline_of_one_expert(tiny_family, tmp_path):
    seed = dare_seed(0, "expert0", 1)
    got = init_particle_checkpoint(
        tiny_family["expert0"], tmp_path / "d", base=tiny_family["base"], drop_p=0.8, seed=seed
    )
    # dare_linear needs two models: weigh the second 0 (it draws after the first, so the first's mask is unchanged)
    ref = merge_checkpoints(
        "dare_linear",
        [tiny_family["expert0"], tiny_family["expert1"]],
        tmp_path / "ref",
        base=tiny_family["base"],
        seed=seed,
        drop_p=0.8,
        weights=[1.0, 0.0],
    )
    assert got["content_hash"] == ref["content_hash"]


def test_two_moves_stream_the_update_with_float32_velocities(family, tmp_path):
    b, e0, e1 = family["base"], family["expert0"], family["expert1"]
    kw = dict(base=b, w=0.2, c1=2.0, c2=2.0)
    # step 1: x = e0, v0 = 0, pbest = e0, gbest = e1
    one = pso_move_checkpoint(e0, e0, e1, tmp_path / "x1", tmp_path / "v1", r1=0.3, r2=0.6, **kw)
    one_blocks = pso_move_checkpoint(
        e0, e0, e1, tmp_path / "x1b", tmp_path / "v1b", r1=0.3, r2=0.6, block_elems=BLOCK, **kw
    )
    assert one_blocks == one
    x0, x1, v1, g = (CheckpointReader(p) for p in (e0, tmp_path / "x1", tmp_path / "v1", e1))
    for name in x0.names:
        want_x, want_v = pso_step(x0.get(name), None, x0.get(name), g.get(name), 0.3, 0.6)
        assert x1.get(name).dtype == x0.info(name).dtype and v1.get(name).dtype == torch.float32
        assert torch.equal(x1.get(name), want_x) and torch.equal(v1.get(name), want_v), name
        # by hand: v = 2*0.6*(gbest - x) in float32
        assert torch.allclose(v1.get(name), 1.2 * (g.get(name).float() - x0.get(name).float()))
    assert one["velocity_hash"] == checkpoint_content_hash(tmp_path / "v1")
    assert one["content_hash"] == checkpoint_content_hash(tmp_path / "x1")
    assert (tmp_path / "x1" / "config.json").exists() and not (tmp_path / "v1" / "config.json").exists()
    # step 2: from x1 with v1, pbest = x1, gbest = e1
    two = pso_move_checkpoint(
        tmp_path / "x1",
        tmp_path / "x1",
        e1,
        tmp_path / "x2",
        tmp_path / "v2",
        velocity=tmp_path / "v1",
        r1=0.9,
        r2=0.1,
        **kw,
    )
    two_blocks = pso_move_checkpoint(
        tmp_path / "x1",
        tmp_path / "x1",
        e1,
        tmp_path / "x2b",
        tmp_path / "v2b",
        velocity=tmp_path / "v1",
        r1=0.9,
        r2=0.1,
        block_elems=BLOCK,
        **kw,
    )
    assert two_blocks == two
    x2, v2 = CheckpointReader(tmp_path / "x2"), CheckpointReader(tmp_path / "v2")
    for name in x0.names:
        want_x, want_v = pso_step(x1.get(name), v1.get(name), x1.get(name), g.get(name), 0.9, 0.1)
        assert torch.equal(x2.get(name), want_x) and torch.equal(v2.get(name), want_v), name
    assert two["sparsity"] == pytest.approx(checkpoint_sparsity(tmp_path / "x2", base=b)["global"])


def test_a_velocity_must_be_float32_of_the_positions_shapes(tiny_family, tiny_family_bf16, tmp_path):
    from saemerge.errors import SaeMergeError

    b, e0 = tiny_family["base"], tiny_family["expert0"]
    with pytest.raises(SaeMergeError, match="expected .* float32"):
        pso_move_checkpoint(
            e0, e0, e0, tmp_path / "x", tmp_path / "v", base=b, velocity=tiny_family_bf16["expert0"], r1=0.1, r2=0.1
        )
