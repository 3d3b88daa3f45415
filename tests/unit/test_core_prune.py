"""Magnitude pruning (SAE-SPEC §1) against hand-computed masks."""

from __future__ import annotations

import math

import pytest
import torch

from saemerge.core import prune as P
from saemerge.core.prune import (
    GlobalCutState,
    apply_global_cut,
    is_prunable,
    keep_count,
    magnitude_mask,
    prune_tensor,
    select_global_cut,
)
from saemerge.errors import SaeMergeError


@pytest.mark.parametrize(
    "name,shape,expected",
    [
        ("model.layers.3.self_attn.q_proj.weight", (32, 32), True),
        ("model.layers.0.mlp.down_proj.weight", (32, 64), True),
        ("transformer.h.3.attn.c_attn.weight", (32, 96), True),
        ("blocks.12.mlp.fc1.weight", (8, 8), True),
        ("model.layers.3.self_attn.q_proj.bias", (32,), False),
        ("model.layers.3.input_layernorm.weight", (32,), False),
        ("model.layers.3.post_attention_layernorm.weight", (4, 8), False),  # 2-D norm: still a norm
        ("transformer.h.3.ln_1.weight", (2, 16), False),
        ("model.embed_tokens.weight", (256, 32), False),
        ("transformer.wte.weight", (256, 32), False),
        ("lm_head.weight", (256, 32), False),
        ("model.norm.weight", (32,), False),
        ("model.layers.3.mlp.up_proj.weight", (2, 4, 4), False),  # not 2-D
        ("model.some_proj.weight", (32, 32), False),  # outside any block
    ],
)
def test_is_prunable(name, shape, expected):
    assert is_prunable(name, shape) is expected


def test_block_index():
    assert P.block_index("model.layers.17.mlp.up_proj.weight") == 17
    assert P.block_index("transformer.h.0.attn.c_proj.weight") == 0
    assert P.block_index("model.embed_tokens.weight") is None
    # "h" must be a whole name component: "mlp.h" would be a different thing.
    assert P.block_index("graph.2.weight") is None


@pytest.mark.parametrize(
    "n,s,k",
    [
        (10, 0.6, 4),
        (10, 0.0, 10),
        (10, 0.1, 9),
        (10, 0.3, 7),
        (10, 0.7, 3),
        (3, 0.5, 2),
        (1, 0.99, 1),
        (0, 0.5, 0),
        (100, 0.35, 65),
        (7, 1 / 3, 5),
    ],
)
def test_keep_count_exact(n, s, k):
    assert keep_count(n, s) == k


def test_keep_count_float_trap():
    # Plain float arithmetic gets this wrong: (1 - 0.7) * 10 = 3.0000000000000004.
    assert math.ceil((1 - 0.7) * 10) == 4
    assert keep_count(10, 0.7) == 3
    assert keep_count(10, 0.6) == 4
    assert keep_count(400_000_000, 0.6) == 160_000_000


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan"), "x"])
def test_sparsity_validation_names_value(bad):
    with pytest.raises(SaeMergeError, match="sparsity"):
        magnitude_mask(torch.ones(4), bad)
    with pytest.raises(SaeMergeError, match=repr(bad) if isinstance(bad, str) else "sparsity"):
        keep_count(4, bad)


def test_validation_message_names_value():
    with pytest.raises(SaeMergeError, match=r"sparsity 1\.0 is outside \[0, 1\)"):
        prune_tensor(torch.ones(4), 1.0)


def test_mask_by_hand():
    x = torch.tensor([1.0, -3.0, 2.0, 0.5, -2.5, 0.0])
    # s = 0.5 -> keep 3 largest |x|: -3, -2.5, 2
    assert magnitude_mask(x, 0.5).tolist() == [False, True, True, False, True, False]
    assert magnitude_mask(x, 0.0).all()


def test_mask_ties_lowest_index_wins():
    x = torch.tensor([2.0, -5.0, -2.0, 2.0, 1.0, 2.0])
    # keep 3: -5 plus two of the four |2|'s at indices 0, 2, 3, 5 -> 0 and 2.
    assert magnitude_mask(x, 0.5).tolist() == [True, True, True, False, False, False]
    assert int(magnitude_mask(x, 0.5).sum()) == 3


def test_mask_2d_uses_row_major_flat_index():
    x = torch.tensor([[1.0, 3.0], [3.0, 3.0]])
    # keep ceil(0.5*4)=2 of three equal 3's -> flat indices 1 and 2.
    assert magnitude_mask(x, 0.5).tolist() == [[False, True], [True, False]]


def test_mask_exact_count_random_with_many_ties():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-3, 4, (37, 11), generator=g).float()
    for s in (0.0, 0.1, 0.25, 0.5, 0.6, 0.9, 0.99):
        m = magnitude_mask(x, s)
        assert int(m.sum()) == keep_count(x.numel(), s)
        kept, dropped = x.abs()[m], x.abs()[~m]
        if dropped.numel():
            assert kept.min() >= dropped.max()
            # Among entries equal to the threshold, every kept one precedes every dropped one.
            t = kept.min()
            flat_m, flat_x = m.reshape(-1), x.abs().reshape(-1)
            eq = (flat_x == t).nonzero().reshape(-1)
            kept_eq = eq[flat_m[eq]]
            drop_eq = eq[~flat_m[eq]]
            if kept_eq.numel() and drop_eq.numel():
                assert kept_eq.max() < drop_eq.min()


def test_selection_paths_agree():
    # The CUDA path uses sort, the CPU path radix select; torch.kthvalue is the reference.
    g = torch.Generator().manual_seed(2)
    x = torch.randint(-50, 50, (1001,), generator=g).float() / 7
    x[:5] = float("nan")
    bits = P._magnitude_bits(x)
    for k in (1, 2, 5, 6, 17, 500, 1000, 1001):
        ref = int(torch.kthvalue(bits, bits.numel() - k + 1).values)
        assert P.kth_largest_sort(bits, k) == ref
        expected = (ref, k - int((bits > ref).sum()))
        assert P.threshold_and_ties(bits, k, "sort") == expected
        assert P.threshold_and_ties(bits, k, "radix") == expected
        assert P.threshold_and_ties(bits, k) == expected
    with pytest.raises(ValueError):
        P.threshold_and_ties(bits, 3, "kthvalue")


class _FakeCudaBits:
    """Stands in for a CUDA tensor in the dispatch test: reports device cuda, wraps CPU data."""

    class device:  # noqa: N801
        type = "cuda"

    def __init__(self, t):
        self.t = t

    def __gt__(self, other):
        return self.t > other


def test_cuda_dispatch_uses_sort(monkeypatch):
    real_sort = P.kth_largest_sort
    called = []
    monkeypatch.setattr(P, "radix_select", lambda *a: called.append("radix"))
    monkeypatch.setattr(P, "kth_largest_sort", lambda b, k: called.append("sort") or real_sort(b.t, k))
    bits = P._magnitude_bits(torch.tensor([3.0, 1.0, 3.0, 2.0]))
    assert P.threshold_and_ties(_FakeCudaBits(bits), 2) == (int(bits[0]), 2)
    assert called == ["sort"]


def test_nan_counts_as_largest_magnitude():
    x = torch.tensor([1.0, float("nan"), 3.0, 2.0])
    assert magnitude_mask(x, 0.5).tolist() == [False, True, True, False]


def test_prune_weight_space():
    x = torch.tensor([0.1, -0.4, 0.3, -0.2, 0.05])
    out = prune_tensor(x, 0.6)  # keep 2
    assert out.tolist() == pytest.approx([0.0, -0.4, 0.3, 0.0, 0.0])


def test_prune_delta_space_falls_back_to_base_exactly():
    base = torch.tensor([1.0, 2.0, 3.0, 4.0])
    x = torch.tensor([1.5, 2.0, 2.0, 4.1])  # delta = [0.5, 0, -1, 0.1]
    out = prune_tensor(x, 0.5, base=base)  # keep |-1| and |0.5|
    assert torch.equal(out, torch.tensor([1.5, 2.0, 2.0, 4.0]))
    # weight space on the same tensor picks the largest raw weights instead (tie 2.0 vs 2.0:
    # the lower index wins).
    assert torch.equal(prune_tensor(x, 0.5), torch.tensor([0.0, 2.0, 0.0, 4.1]))


def test_delta_and_weight_space_differ():
    base = torch.tensor([10.0, -10.0, 0.0, 0.0])
    x = torch.tensor([10.0, -10.0, 0.3, -0.2])
    # delta space: keep the two real changes; weight space: keep the two big weights.
    assert torch.equal(prune_tensor(x, 0.5, base=base), x)
    assert torch.equal(prune_tensor(x, 0.5), torch.tensor([10.0, -10.0, 0.0, 0.0]))


def test_prune_shape_mismatch_names_tensor():
    with pytest.raises(SaeMergeError, match="q_proj.*shape"):
        prune_tensor(torch.ones(2, 3), 0.5, base=torch.ones(3, 2), name="q_proj")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_dtype_preserved_and_values_exact(dtype):
    g = torch.Generator().manual_seed(3)
    base = torch.randn(16, 16, generator=g).to(dtype)
    x = (base.float() + 0.01 * torch.randn(16, 16, generator=g)).to(dtype)
    out = prune_tensor(x, 0.6, base=base)
    assert out.dtype == dtype
    m = out != base
    # kept positions equal x bit for bit, pruned ones equal base bit for bit
    assert torch.equal(out[m], x[m])
    kept = magnitude_mask(x.float() - base.float(), 0.6)
    assert torch.equal(out[~kept], base[~kept]) and torch.equal(out[kept], x[kept])
    assert prune_tensor(x, 0.6).dtype == dtype


def test_no_redensification():
    g = torch.Generator().manual_seed(4)
    base = torch.randn(20, 10, generator=g)
    x = base + torch.randn(20, 10, generator=g)
    sparse = prune_tensor(x, 0.8, base=base)
    for s in (0.0, 0.3, 0.6, 0.8):
        assert torch.equal(prune_tensor(sparse, s, base=base), sparse)
    w = prune_tensor(x, 0.7)
    assert torch.equal(prune_tensor(w, 0.5), w)
    # and pruning further does remove more
    assert int((prune_tensor(w, 0.9) == 0).sum()) == 200 - keep_count(200, 0.9)


def _concat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def _global_mask(ts, s):
    cut = select_global_cut(lambda: iter(ts), s)
    state = GlobalCutState()
    masks = [apply_global_cut(t, cut, state) for t in ts]
    assert state.tensors == len(ts)
    return cut, masks


@pytest.mark.parametrize("s", [0.0, 0.2, 0.37, 0.6, 0.95])
def test_global_equals_mask_over_concatenation(s):
    g = torch.Generator().manual_seed(5)
    # Heavy ties (quantised values) and exact zeros, different shapes and dtypes.
    ts = [
        (torch.randint(-4, 5, (7, 9), generator=g) / 2).float(),
        (torch.randint(-4, 5, (13,), generator=g) / 2).to(torch.bfloat16),
        torch.zeros(3, 3),
        (torch.randint(-4, 5, (5, 6), generator=g) / 2).to(torch.float16),
    ]
    cut, masks = _global_mask(ts, s)
    ref = magnitude_mask(_concat([t.float() for t in ts]), s)
    assert torch.equal(_concat(masks), ref)
    assert cut.keep == keep_count(sum(t.numel() for t in ts), s) == int(ref.sum())
    for t, m in zip(ts, masks):
        assert m.shape == t.shape


def test_global_ties_go_to_earlier_tensor():
    ts = [torch.tensor([1.0, 2.0, 0.0]), torch.tensor([2.0, 2.0, 5.0])]
    # keep 3 of 6: 5 and two of the three 2's -> the one in tensor 0 and the first in tensor 1
    cut, masks = _global_mask(ts, 0.5)
    assert cut.threshold == 2.0 and cut.ties_kept == 2 and cut.keep == 3
    assert masks[0].tolist() == [False, True, False]
    assert masks[1].tolist() == [True, False, True]


def test_global_differs_from_tensor_granularity():
    ts = [torch.tensor([10.0, 20.0]), torch.tensor([1.0, 2.0])]
    _, masks = _global_mask(ts, 0.5)
    assert masks[0].tolist() == [True, True] and masks[1].tolist() == [False, False]
    assert magnitude_mask(ts[1], 0.5).tolist() == [False, True]


def test_global_full_bit_range():
    # Values spanning tiny subnormal-ish to huge magnitudes exercise both radix passes.
    g = torch.Generator().manual_seed(6)
    x = torch.randn(4000, generator=g) * torch.logspace(-30, 30, 4000)
    x[::97] = 0.0
    ts = list(x.split(777))
    for s in (0.1, 0.5, 0.9):
        cut, masks = _global_mask(ts, s)
        assert torch.equal(_concat(masks), magnitude_mask(x, s))
        kept = x.abs()[_concat(masks)]
        assert float(kept.min()) == cut.threshold


def test_global_chunks_called_twice_and_validates():
    calls = []

    def chunks():
        calls.append(1)
        yield torch.ones(3)

    select_global_cut(chunks, 0.5)
    assert len(calls) == 2
    with pytest.raises(SaeMergeError, match="sparsity"):
        select_global_cut(chunks, 1.0)


def test_global_empty_stream():
    cut = select_global_cut(lambda: iter(()), 0.5)
    assert cut.total == 0 and cut.keep == 0


def test_first_true_crosses_chunks(monkeypatch):
    monkeypatch.setattr(P, "_TIE_CHUNK", 4)
    eq = torch.tensor([True, False, True, True, True, True, False, True, True, True])
    out = P._first_true(eq, 5)
    assert out.tolist() == [True, False, True, True, True, True, False, False, False, False]
    assert P._first_true(eq, 6).tolist() == [True, False, True, True, True, True, False, True, False, False]
    assert P._first_true(eq, 0).sum() == 0
    assert torch.equal(P._first_true(eq, 100), eq)


def test_apply_mask_helper():
    x = torch.tensor([1.0, 2.0, 3.0])
    b = torch.tensor([9.0, 9.0, 9.0])
    m = torch.tensor([True, False, True])
    assert P.apply_mask(x, m).tolist() == [1.0, 0.0, 3.0]
    assert P.apply_mask(x, m, b).tolist() == [1.0, 9.0, 3.0]


def test_top_k_mask_bounds():
    x = torch.tensor([3.0, -1.0, 2.0])
    assert P.top_k_mask(x, 0).sum() == 0
    assert P.top_k_mask(x, 5).all()
    assert P.top_k_mask(x, 2).tolist() == [True, False, True]
