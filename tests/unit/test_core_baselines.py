"""Baseline merge methods (SAE-SPEC §7) against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from saemerge.core.baselines import (
    MERGE_METHODS,
    block_index,
    dare,
    dare_drop,
    get_method,
    linear,
    rankmean_block_delta,
    rankmean_tensor,
    rankmean_tensor_weights,
    rankmean_weights,
    task_arithmetic,
    tensor_generator,
    ties,
)
from saemerge.errors import SaeMergeError

T = torch.tensor


def test_linear_mean_and_weights():
    a, b = T([1.0, 2.0]), T([3.0, 6.0])
    assert linear([a, b]).tolist() == [2.0, 4.0]
    assert linear([a, b], [1.0, 3.0]).tolist() == [2.5, 5.0]  # normalised: (1a+3b)/4
    assert linear([a, b], [1.0, 3.0], normalize=False).tolist() == [10.0, 20.0]
    with pytest.raises(SaeMergeError, match="sum to 0"):
        linear([a, b], [1.0, -1.0])
    with pytest.raises(SaeMergeError, match="2 weights for 1 experts"):
        linear([a], [1.0, 1.0])


def test_task_arithmetic_by_hand():
    base = T([1.0, 1.0])
    experts = [T([2.0, 0.0]), T([1.0, 3.0])]  # tau = [1, -1], [0, 2]
    assert task_arithmetic(base, experts, alpha=0.5).tolist() == [1.5, 1.5]
    assert task_arithmetic(base, experts, alpha=1.0).tolist() == [2.0, 2.0]
    assert task_arithmetic(base, experts, 1.0, [2.0, 0.0]).tolist() == [3.0, -1.0]


def test_ties_sign_election_and_disjoint_mean_no_trim():
    base = torch.zeros(4)
    t1, t2 = T([1.0, -2.0, 3.0, 0.0]), T([2.0, 1.0, -4.0, 1.0])
    # sum [3, -1, -1, 1] -> signs [+, -, -, +]; agreeing entries averaged:
    # 0: (1+2)/2; 1: only -2 agrees; 2: only -4; 3: only t2's 1 (t1 is zero, not a vote)
    assert ties(base, [t1, t2], density=1.0).tolist() == [1.5, -2.0, -4.0, 1.0]


def test_ties_trim_by_hand():
    base = torch.zeros(4)
    t1, t2 = T([1.0, -2.0, 3.0, 0.0]), T([2.0, 1.0, -4.0, 1.0])
    # density 0.5 keeps 2 per task vector: t1 -> [0,-2,3,0], t2 -> [2,0,-4,0]
    # sum [2, -2, -1, 0] -> pos 3 elects + (mergekit) but no entry is non-zero there: 0
    assert ties(base, [t1, t2], density=0.5).tolist() == [2.0, -2.0, -4.0, 0.0]
    # alpha scales the merged task vector, added to the base
    assert ties(torch.ones(4), [t1 + 1, t2 + 1], density=0.5, alpha=0.5).tolist() == [2.0, 0.0, -1.0, 1.0]


def test_ties_sign_cancel_and_weights():
    base = torch.zeros(2)
    # pos 0 cancels exactly: mergekit elects + (sum >= 0), so the positive entry survives
    assert ties(base, [T([1.0, 0.0]), T([-1.0, 0.0])], density=1.0).tolist() == [1.0, 0.0]
    assert ties(base, [T([-1.0, 0.0]), T([1.0, 0.0]), T([-2.0, 0.0]), T([2.0, 0.0])], density=1.0).tolist() == [
        1.5,
        0.0,
    ]
    # weights [3, 1]: sum of weighted [1-2, -3-3] = [1, -6]; pos 0: only t1 agrees -> 3*1/3;
    # pos 1: both agree -> (3*-1 + 1*-3)/(3+1) = -1.5
    out = ties(base, [T([1.0, -1.0]), T([-2.0, -3.0])], density=1.0, weights=[3.0, 1.0])
    assert out.tolist() == [1.0, -1.5]


def test_ties_keeps_mergekits_count_when_density_times_n_is_fractional():
    """mergekit keeps max(1, int(density·n)); 0.2 x 7 = 1.4 keeps 1 entry (ceil would keep 2),
    and 0.1 x 5 = 0.5 still keeps 1."""
    base = torch.zeros(7)
    t1 = T([0.1, -0.7, 0.2, 0.3, -0.4, 0.5, 0.6])  # largest |x|: -0.7
    t2 = T([0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])  # largest |x|: 0.9
    assert ties(base, [t1, t2], density=0.2).tolist() == pytest.approx([0.9, -0.7, 0, 0, 0, 0, 0])
    assert ties(torch.zeros(5), [T([0.0, 0.0, 3.0, -1.0, 0.0])], density=0.1).tolist() == [0, 0, 3.0, 0, 0]
    from saemerge.core.baselines import _density_keep

    assert [_density_keep(n, 0.2, "t") for n in (4, 5, 7, 10, 11)] == [1, 1, 1, 2, 2]


def test_ties_density_validation():
    with pytest.raises(SaeMergeError, match="density 0.0 is outside"):
        ties(torch.zeros(2), [torch.ones(2)], density=0.0)
    with pytest.raises(SaeMergeError, match="density 1.5"):
        ties(torch.zeros(2), [torch.ones(2)], density=1.5)


def test_tensor_generator_stable_and_distinct():
    name = "model.layers.0.mlp.up_proj.weight"
    # Fixed value: a change of hashing would silently change every DARE result.
    assert tensor_generator(0, name).initial_seed() == 3079129940746106144
    assert tensor_generator(1, name).initial_seed() == 2137315794913509495
    assert tensor_generator(0, "lm_head.weight").initial_seed() != tensor_generator(0, name).initial_seed()
    a = torch.rand(5, generator=tensor_generator(7, name))
    b = torch.rand(5, generator=tensor_generator(7, name))
    assert torch.equal(a, b)


def test_dare_drop_rescales():
    g = tensor_generator(0, "w")
    out = dare_drop(torch.full((2000,), 2.0), 0.8, g)
    vals = set(out.unique().tolist())
    assert vals == {0.0, 10.0}  # survivors rescaled by 1/(1-0.8)
    kept = int((out != 0).sum())
    assert 300 < kept < 500  # ~400 expected; binomial sd ~18
    # the drop pattern is exactly u >= p for the generator's draws
    u = torch.rand(2000, generator=tensor_generator(0, "w"))
    assert torch.equal(out != 0, u >= 0.8)
    assert torch.equal(dare_drop(T([1.0, 2.0]), 0.0, tensor_generator(0, "w")), T([1.0, 2.0]))
    with pytest.raises(SaeMergeError, match="drop probability 1.0"):
        dare_drop(T([1.0]), 1.0, g)


def test_dare_linear_by_hand_and_reproducible():
    base = T([1.0, 1.0, 1.0, 1.0])
    e1, e2 = T([2.0, 3.0, 1.0, 0.0]), T([1.0, 5.0, 3.0, 1.0])
    out = dare(base, [e1, e2], 0.5, tensor_generator(3, "x"), combine="linear")
    g = tensor_generator(3, "x")
    u1, u2 = torch.rand(4, generator=g), torch.rand(4, generator=g)  # expert order
    expect = base + (e1 - base) * (u1 >= 0.5) * 2 + (e2 - base) * (u2 >= 0.5) * 2
    assert torch.allclose(out, expect)
    again = dare(base, [e1, e2], 0.5, tensor_generator(3, "x"), combine="linear")
    assert torch.equal(out, again)
    other = dare(base, [e1, e2], 0.5, tensor_generator(4, "x"), combine="linear")
    assert not torch.equal(out, other)


def test_dare_p0_reduces_to_task_arithmetic_and_ties():
    g0 = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g0)
    experts = [base + torch.randn(6, 5, generator=g0) for _ in range(3)]
    lin = dare(base, experts, 0.0, tensor_generator(0, "a"), combine="linear", alpha=0.7)
    assert torch.allclose(lin, task_arithmetic(base, experts, 0.7))
    dt = dare(base, experts, 0.0, tensor_generator(0, "a"), combine="ties", density=0.3)
    assert torch.allclose(dt, ties(base, experts, density=0.3))
    with pytest.raises(SaeMergeError, match="unknown DARE combine 'tie'"):
        dare(base, experts, 0.5, tensor_generator(0, "a"), combine="tie")


def test_dare_ties_by_hand():
    base = torch.zeros(3)
    e1, e2 = T([1.0, -1.0, 2.0]), T([-3.0, -1.0, 1.0])
    g = tensor_generator(9, "t")
    out = dare(base, [e1, e2], 0.5, g, combine="ties")
    g = tensor_generator(9, "t")
    d1 = e1 * (torch.rand(3, generator=g) >= 0.5) * 2
    d2 = e2 * (torch.rand(3, generator=g) >= 0.5) * 2
    assert torch.allclose(out, ties(base, [d1, d2], density=1.0))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_baselines_preserve_dtype(dtype):
    base = T([1.0, 2.0, 3.0, 4.0]).to(dtype)
    ex = [T([1.5, 2.0, 2.0, 4.0]).to(dtype), T([1.0, 3.0, 3.0, 5.0]).to(dtype)]
    assert linear(ex).dtype == dtype
    assert task_arithmetic(base, ex, 0.5).dtype == dtype
    assert ties(base, ex, 0.5).dtype == dtype
    assert dare(base, ex, 0.5, tensor_generator(0, "n")).dtype == dtype
    assert rankmean_tensor(base, ex, [0.25, 0.75]).dtype == dtype
    assert task_arithmetic(base, ex, 1.0).float().tolist() == [1.5, 3.0, 2.0, 5.0]


def test_shape_mismatch_names_tensor():
    with pytest.raises(SaeMergeError, match="wq: shapes differ"):
        task_arithmetic(torch.zeros(2), [torch.zeros(3)], name="wq")
    with pytest.raises(SaeMergeError, match="no expert tensors"):
        linear([])


def test_rankmean_ranks_by_hand():
    # expert 0 deltas by block: 0->1, 1->3, 2->2 -> ranks 1, 3, 2
    # expert 1 deltas by block: 0->5, 1->2, 2->9 -> ranks 2, 1, 3
    w = rankmean_weights({0: [1.0, 5.0], 1: [3.0, 2.0], 2: [2.0, 9.0]})
    assert w[0] == pytest.approx([1 / 3, 2 / 3])
    assert w[1] == pytest.approx([3 / 4, 1 / 4])
    assert w[2] == pytest.approx([2 / 5, 3 / 5])
    for lam in w.values():
        assert sum(lam) == pytest.approx(1.0)


def test_rankmean_ties_and_errors():
    # equal deltas: lower block index gets the lower rank
    w = rankmean_weights({0: [1.0, 1.0], 1: [1.0, 0.5]})
    # expert 0 ranks: block0 1, block1 2; expert 1: block0 2, block1 1
    assert w == {0: pytest.approx([1 / 3, 2 / 3]), 1: pytest.approx([2 / 3, 1 / 3])}
    assert rankmean_weights({}) == {}
    with pytest.raises(SaeMergeError, match="different expert counts"):
        rankmean_weights({0: [1.0], 1: [1.0, 2.0]})


def test_rankmean_tensor_weights_and_merge():
    bw = {0: [0.25, 0.75], 1: [0.6, 0.4]}
    assert rankmean_tensor_weights("model.layers.1.mlp.up_proj.weight", bw, 2) == [0.6, 0.4]
    assert rankmean_tensor_weights("model.layers.0.input_layernorm.weight", bw, 2) == [0.25, 0.75]
    assert rankmean_tensor_weights("model.embed_tokens.weight", bw, 2) == [0.5, 0.5]
    base = T([1.0, 1.0])
    out = rankmean_tensor(base, [T([2.0, 1.0]), T([1.0, 5.0])], [0.25, 0.75])
    assert out.tolist() == [1.25, 4.0]
    assert rankmean_block_delta(T([1.0, -1.0]), T([0.5, 1.0])) == pytest.approx(2.5)
    assert block_index("model.layers.4.self_attn.o_proj.weight") == 4


def test_registry_names_and_lookup():
    assert set(MERGE_METHODS) == {"linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "rankmean", "sae"}
    assert get_method("ties").params["density"] == 0.2
    assert get_method("linear").needs_base is False
    assert get_method("sae").fn is None
    with pytest.raises(SaeMergeError, match="unknown merge method 'tie'; did you mean 'ties'"):
        get_method("tie")


@pytest.mark.parametrize("name", ["linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "rankmean"])
def test_registry_specs_callable_with_their_params(name):
    spec = get_method(name)
    base = T([0.0, 1.0, 2.0, 3.0, 4.0])
    ex = [base + T([1.0, -1.0, 0.5, 0.0, 2.0]), base + T([-1.0, -2.0, 0.5, 1.0, 0.0])]
    params = dict(spec.params)
    if spec.needs_generator:
        params["generator"] = tensor_generator(0, "x")
    if spec.per_block_weights:
        params["weights"] = [0.5, 0.5]
    out = spec.fn(base, ex, **params) if spec.needs_base else spec.fn(ex, **params)
    assert out.shape == base.shape and out.dtype == base.dtype
