"""SAE pair merge (SAE-SPEC §3) against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from saemerge.core.merge import (
    omega,
    sae_lambda,
    sae_merge_tensor,
    sae_offspring_tensor,
    tensor_lambda,
    tensor_rho,
)
from saemerge.core.prune import keep_count
from saemerge.errors import SaeMergeError


def test_omega():
    assert omega(1.0, 0.3) == pytest.approx(0.3)
    assert omega(0.5, 0.6) == pytest.approx(0.3)
    assert omega(0.0, 0.9) == 0.0


def test_lambda_by_hand():
    # (0.6 + 0.5) / ((0.6 + 0.5) + (0.4 + 0.1)) = 1.1 / 1.6
    assert sae_lambda(0.6, 0.4, 0.5, 0.1) == pytest.approx(0.6875)
    assert sae_lambda(0.5, 0.5, 0.0, 0.0) == 0.5
    assert sae_lambda(1.0, 0.0, 0.0, 0.0) == 1.0


def test_lambda_zero_denominator():
    assert sae_lambda(0.0, 0.0, 0.0, 0.0) == 0.5


def test_lambda_global_vs_local():
    s_a, s_b = 0.6, 0.4
    rho_a, rho_b = 0.5, 0.1  # global sparsities
    rho_a_l, rho_b_l = 0.2, 0.6  # one prunable tensor's own sparsities
    # global scoring: the same lambda for every tensor
    for prunable in (True, False):
        ra = tensor_rho("global", prunable, rho_a, rho_a_l)
        rb = tensor_rho("global", prunable, rho_b, rho_b_l)
        assert tensor_lambda(s_a, s_b, ra, rb) == pytest.approx(1.1 / 1.6)
    # local scoring, prunable tensor: (0.6+0.2) / ((0.6+0.2) + (0.4+0.6)) = 0.8 / 1.8
    ra = tensor_rho("local", True, rho_a, rho_a_l)
    rb = tensor_rho("local", True, rho_b, rho_b_l)
    assert tensor_lambda(s_a, s_b, ra, rb) == pytest.approx(0.8 / 1.8)
    # local scoring, non-prunable tensor (embedding): falls back to the global rho
    ra = tensor_rho("local", False, rho_a, None)
    rb = tensor_rho("local", False, rho_b, None)
    assert tensor_lambda(s_a, s_b, ra, rb) == pytest.approx(1.1 / 1.6)
    # beta scales the sparsity bonus: beta=2 -> (0.6+0.4)/((0.6+0.4)+(0.4+1.2))
    assert tensor_lambda(s_a, s_b, 0.2, 0.6, beta=2.0) == pytest.approx(1.0 / 2.6)


def test_tensor_rho_errors():
    with pytest.raises(SaeMergeError, match="unknown scoring 'locl'.*'local'"):
        tensor_rho("locl", True, 0.1, 0.2)
    with pytest.raises(ValueError):
        tensor_rho("local", True, 0.1, None)


def test_linear_weight_space_by_hand():
    a = torch.tensor([1.0, 0.0, 2.0, 0.0])
    b = torch.tensor([3.0, 4.0, 0.0, 0.0])
    out = sae_merge_tensor(a, b, 0.25)
    # 0.25*a + 0.75*b; where A is pruned B's weight occupies the slot scaled by 0.75
    assert out.tolist() == pytest.approx([2.5, 3.0, 0.5, 0.0])


def test_fill_weight_space_by_hand():
    a = torch.tensor([1.0, 0.0, 2.0, 0.0])
    b = torch.tensor([3.0, 4.0, 0.0, 0.0])
    out = sae_merge_tensor(a, b, 0.25, attraction="fill")
    # exactly one parent zero -> the other unscaled; both zero -> 0; both set -> formula
    assert out.tolist() == pytest.approx([2.5, 4.0, 2.0, 0.0])


def test_delta_space_linear_and_fill():
    base = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])
    a = torch.tensor([2.0, 1.0, 3.0, 1.0, 0.0])  # delta [1, 0, 2, 0, 0]
    b = torch.tensor([5.0, 3.0, 1.0, 1.0, 2.0])  # delta [4, 2, 0, 0, 2]
    lin = sae_merge_tensor(a, b, 0.5, base=base)
    # base + 0.5*da + 0.5*db
    assert lin.tolist() == pytest.approx([3.5, 2.0, 2.0, 1.0, 1.0])
    fill = sae_merge_tensor(a, b, 0.5, attraction="fill", base=base)
    # A equals base at 1 and 4 -> take B; B equals base at 2 -> take A; both at 3 -> base
    assert fill.tolist() == pytest.approx([3.5, 3.0, 3.0, 1.0, 2.0])
    # weight space differs: index 4 has A == 0 in weight space too, index 1 doesn't
    assert sae_merge_tensor(a, b, 0.5, attraction="fill").tolist() == pytest.approx([3.5, 2.0, 2.0, 1.0, 2.0])


def test_delta_space_keeps_shared_base_positions_exact():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(50, generator=g) * 1e3
    a, b = base.clone(), base.clone()
    a[:10] += 1.0
    b[5:15] -= 2.0
    out = sae_merge_tensor(a, b, 0.3, base=base)
    # positions where both parents equal the base are bit-identical to the base
    assert torch.equal(out[15:], base[15:])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dtype_preserved(dtype):
    a = torch.tensor([1.0, 2.0, 0.0]).to(dtype)
    b = torch.tensor([3.0, 0.0, 0.0]).to(dtype)
    base = torch.zeros(3, dtype=dtype)
    for kw in ({}, {"base": base}, {"attraction": "fill"}):
        out = sae_merge_tensor(a, b, 0.5, **kw)
        assert out.dtype == dtype
    assert sae_merge_tensor(a, b, 0.5).float().tolist() == [2.0, 1.0, 0.0]


def test_merge_validation():
    with pytest.raises(SaeMergeError, match="unknown attraction 'fil'"):
        sae_merge_tensor(torch.ones(2), torch.ones(2), 0.5, attraction="fil")
    with pytest.raises(SaeMergeError, match="wq: parents have different shapes"):
        sae_merge_tensor(torch.ones(2), torch.ones(3), 0.5, name="wq")


def test_offspring_prunes_parents_and_child():
    base = torch.zeros(10)
    a = torch.arange(1.0, 11.0)  # 1..10
    b = -torch.arange(10.0, 0.0, -1.0)  # -10..-1
    child = sae_offspring_tensor(a, b, 0.5, 0.6, prunable=True, base=base)
    # parents keep 4 each: a keeps 7..10 (idx 6-9), b keeps -10..-7 (idx 0-3); linear gives
    # 0.5*each: [-5, -4.5, -4, -3.5, 0, 0, 3.5, 4, 4.5, 5]; child pruned to the 4 largest |.|
    assert int((child != 0).sum()) == keep_count(10, 0.6)
    assert child.tolist() == pytest.approx([-5.0, -4.5, 0, 0, 0, 0, 0, 0, 4.5, 5.0])
    # non-prunable: a plain merge
    emb = sae_offspring_tensor(a, b, 0.5, 0.6, prunable=False, base=base)
    assert torch.equal(emb, 0.5 * a + 0.5 * b)


def test_offspring_fill():
    base = torch.zeros(4)
    a = torch.tensor([4.0, 3.0, 0.1, 0.2])
    b = torch.tensor([0.1, 0.2, 4.0, 3.0])
    child = sae_offspring_tensor(a, b, 0.5, 0.5, prunable=True, attraction="fill", base=base)
    # parents pruned to disjoint supports [4, 3, 0, 0] and [0, 0, 4, 3]; fill takes each
    # unscaled -> [4, 3, 4, 3]; child pruned to 2 -> the 4's. Linear halves them.
    assert child.tolist() == [4.0, 0.0, 4.0, 0.0]
    lin = sae_offspring_tensor(a, b, 0.5, 0.5, prunable=True, base=base)
    assert lin.tolist() == [2.0, 0.0, 2.0, 0.0]
