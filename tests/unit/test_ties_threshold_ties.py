"""TIES's trim at a tie: of the entries sharing the threshold magnitude, exactly max(1, int(density·n))
survive and the lowest flat indices win (SAE-SPEC §1's rule, which saemerge's TIES trim follows).

This is where saemerge and mergekit 0.1.5 part on real checkpoints (benchmarks/ties_vs_mergekit.py):
mergekit keeps whichever tied entries ``torch.argsort(descending=True)`` returns first, which is
not the lowest index and depends on the tensor's size and layout."""

from __future__ import annotations

import torch

from saemerge.core.baselines import ties, ties_combine


def test_tied_magnitudes_at_the_threshold_keep_the_lowest_flat_indices():
    tau = torch.tensor([0.5, -2.0, 2.0, 1.0, -2.0, 2.0, 0.25, -2.0])
    # k = int(0.5 * 8) = 4, and five entries share the top magnitude 2.0: indices 1, 2, 4, 5 kept, 7 not
    merged = ties_combine([tau], [1.0], density=0.5)
    assert merged.tolist() == [0.0, -2.0, 2.0, 0.0, -2.0, 2.0, 0.0, 0.0]


def test_tie_order_holds_in_a_large_tensor_and_a_2d_layout():
    gen = torch.Generator().manual_seed(0)
    # quantised magnitudes: many exact ties, as task vectors of dequantised checkpoints have
    tau = (torch.randint(-8, 9, (96, 1000), generator=gen).float() / 8).reshape(96, 1000)
    k = int(0.2 * tau.numel())
    order = torch.sort(tau.abs().reshape(-1), descending=True, stable=True).indices[:k]
    keep = torch.zeros(tau.numel(), dtype=torch.bool)
    keep[order] = True
    expected = torch.where(keep.view(tau.shape), tau, torch.zeros(()))
    base = torch.zeros_like(tau)
    assert torch.equal(ties(base, [tau], density=0.2), expected)
    assert int((ties(base, [tau], density=0.2) != 0).sum()) == k
