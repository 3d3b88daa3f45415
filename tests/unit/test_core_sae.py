"""SAE pair merge (SAE-SPEC §3) against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from saemerge.core.sae import omega, sae_lambda, sae_merge_tensor
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
