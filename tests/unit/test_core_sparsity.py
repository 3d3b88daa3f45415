"""Sparsity measures (SAE-SPEC §2)."""

from __future__ import annotations

import math

import pytest
import torch

from saemerge.core import sparsity as S
from saemerge.core.sparsity import MEASURES, SparsityAccumulator, get_measure, hoyer, zero_count
from saemerge.errors import SaeMergeError


def test_zero_count_by_hand():
    assert zero_count(torch.tensor([0.0, 1.0, 0.0, -2.0])) == 0.5
    assert zero_count(torch.zeros(3, 3)) == 1.0
    assert zero_count(torch.ones(5)) == 0.0
    assert zero_count(torch.tensor([-0.0, 1.0])) == 0.5  # -0.0 is zero
    assert zero_count(torch.empty(0)) == 0.0


def test_hoyer_by_hand():
    # n=4, x=[3,4,0,0]: L1=7, L2=5 -> (2 - 1.4) / (2 - 1) = 0.6
    assert hoyer(torch.tensor([3.0, 4.0, 0.0, 0.0])) == pytest.approx(0.6)
    # n=9, x=[1,1,0..]: L1=2, L2=√2 -> (3 - √2)/2
    x = torch.zeros(9)
    x[:2] = 1.0
    assert hoyer(x) == pytest.approx((3 - math.sqrt(2)) / 2)


@pytest.mark.parametrize(
    "x,expected",
    [
        (torch.zeros(10), 0.0),  # all zero
        (torch.zeros(0), 0.0),  # empty
        (torch.tensor([5.0]), 0.0),  # n = 1 (0/0 in the formula)
        (torch.tensor([0.0]), 0.0),
        (torch.full((7,), -2.0), 0.0),  # flat
        (torch.tensor([0.0, 0.0, -3.0, 0.0]), 1.0),  # single non-zero
        (torch.tensor([[0.0, 1e-20], [0.0, 0.0]]), 1.0),  # tiny but single
    ],
)
def test_hoyer_edge_cases(x, expected):
    assert hoyer(x) == pytest.approx(expected, abs=1e-12)


def test_hoyer_in_unit_interval_and_signless():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, generator=g)
    h = hoyer(x)
    assert 0.0 < h < 1.0
    assert hoyer(-x) == pytest.approx(h)
    assert hoyer(3 * x) == pytest.approx(h)  # scale-invariant
    x[:50] = 0
    assert hoyer(x) > h  # more zeros -> sparser


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision(dtype):
    x = torch.tensor([3.0, 4.0, 0.0, 0.0], dtype=dtype)
    assert hoyer(x) == pytest.approx(0.6)
    assert zero_count(x) == 0.5


def test_chunked_moments_match(monkeypatch):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1000, generator=g)
    x[::3] = 0
    whole = S.moments(x)
    monkeypatch.setattr(S, "_CHUNK", 7)
    chunked = S.moments(x)
    assert chunked.n == whole.n == 1000 and chunked.zeros == whole.zeros == 334
    assert chunked.l1 == pytest.approx(whole.l1) and chunked.l2sq == pytest.approx(whole.l2sq)


@pytest.mark.parametrize("measure", ["zero_count", "hoyer"])
def test_accumulator_equals_concatenation(measure):
    g = torch.Generator().manual_seed(2)
    ts = [torch.randn(4, 5, generator=g), torch.zeros(6), torch.randn(3, generator=g).to(torch.bfloat16)]
    ts[0][0] = 0
    acc = SparsityAccumulator(measure)
    own = [acc.add(t) for t in ts]
    cat = torch.cat([t.float().reshape(-1) for t in ts])
    assert acc.value() == pytest.approx(MEASURES[measure](cat), rel=1e-12)
    assert own == pytest.approx([MEASURES[measure](t) for t in ts])
    assert acc.tensors == 3


def test_accumulator_zero_count_by_hand():
    acc = SparsityAccumulator()
    acc.add(torch.tensor([0.0, 1.0]))
    acc.add(torch.tensor([0.0, 0.0, 2.0]))
    assert acc.value() == pytest.approx(3 / 5)
    assert SparsityAccumulator("hoyer").value() == 0.0  # nothing added


def test_get_measure_and_unknown():
    assert get_measure("hoyer") is hoyer
    assert get_measure("zero_count") is zero_count
    with pytest.raises(SaeMergeError, match="unknown sparsity measure 'hoyr'; did you mean 'hoyer'"):
        get_measure("hoyr")
    with pytest.raises(SaeMergeError, match="unknown sparsity measure"):
        SparsityAccumulator("l0")
