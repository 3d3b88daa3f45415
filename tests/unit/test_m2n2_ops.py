"""The streamed M2N2 crossover on tiny real checkpoints: equals the in-memory rule, is
bit-identical in row blocks, measures the child's ρ, and picks the split point in tensor order."""

import pytest
import torch

from saemerge.checkpoint import CheckpointReader
from saemerge.core.m2n2 import crossover, flat_offsets, split_index
from saemerge.errors import SaeMergeError
from saemerge.ops import checkpoint_content_hash, checkpoint_sparsity, prune_checkpoint
from saemerge.ops.m2n2 import m2n2_crossover_checkpoints

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


def _state(path) -> dict[str, torch.Tensor]:
    reader = CheckpointReader(path)
    return {n: reader.get(n) for n in reader.names}


@pytest.mark.parametrize("family", ["tiny_family", "tiny_family_bf16"])
def test_streamed_crossover_equals_the_in_memory_rule(request, family, tmp_path):
    fam = request.getfixturevalue(family)
    a, b = fam["expert0"], fam["expert1"]
    got = m2n2_crossover_checkpoints(a, b, tmp_path / "child", t=0.3, split_u=0.4, base=fam["base"])
    state = _state(a)
    n = sum(t.numel() for t in state.values())
    assert got["split"] == split_index(0.4, n) and got["n_entries"] == n
    offsets = flat_offsets(list(state), {k: v.numel() for k, v in state.items()})
    start = offsets[got["split_tensor"]]
    assert start <= got["split"] < start + state[got["split_tensor"]].numel()
    want = crossover(_state(a), _state(b), 0.3, got["split"])
    child = _state(tmp_path / "child")
    assert child.keys() == want.keys()
    for name in want:
        assert child[name].dtype == want[name].dtype
        assert torch.equal(child[name], want[name]), name
    assert got["content_hash"] == checkpoint_content_hash(tmp_path / "child")
    # the experts differ from each other: the spherical formula, not the linear fallback
    assert got["spherical"] is True


@pytest.mark.parametrize("block", [7, 100, 1000])
def test_row_blocks_give_the_same_child(tiny_family, tmp_path, block):
    args = dict(t=0.71, split_u=0.55, base=tiny_family["base"], measure="hoyer")
    whole = m2n2_crossover_checkpoints(tiny_family["expert0"], tiny_family["expert1"], tmp_path / "w", **args)
    blocks = m2n2_crossover_checkpoints(
        tiny_family["expert0"], tiny_family["expert1"], tmp_path / "b", block_elems=block, **args
    )
    assert blocks == whole


def test_rho_is_measured_in_delta_space_and_pruned_parents_give_a_dense_child(tiny_family, tmp_path):
    base = tiny_family["base"]
    pa, pb = tmp_path / "pa", tmp_path / "pb"
    prune_checkpoint(tiny_family["expert0"], pa, 0.6, base=base)
    prune_checkpoint(tiny_family["expert1"], pb, 0.6, base=base)
    got = m2n2_crossover_checkpoints(pa, pb, tmp_path / "child", t=0.5, split_u=0.5, base=base)
    assert got["rho"] == checkpoint_sparsity(tmp_path / "child", base=base)["global"]
    # weight-space SLERP: c_A + c_B != 1, so positions both parents left at the base move off it
    assert got["rho"] < 0.5 * checkpoint_sparsity(pa, base=base)["global"]


def test_end_weights_reproduce_a_parent(tiny_family, tmp_path):
    a, b = tiny_family["expert0"], tiny_family["expert1"]
    # split 0: every entry is SLERP(B, A, t); t = 0 gives B itself, bit for bit
    got = m2n2_crossover_checkpoints(a, b, tmp_path / "child", t=0.0, split_u=0.0)
    assert got["content_hash"] == checkpoint_content_hash(b)
    assert got["rho"] == checkpoint_sparsity(b)["global"]  # no base: ρ of the weights


def test_bad_split_or_weight_is_refused(tiny_family, tmp_path):
    a, b = tiny_family["expert0"], tiny_family["expert1"]
    with pytest.raises(SaeMergeError, match="split point 1.0"):
        m2n2_crossover_checkpoints(a, b, tmp_path / "x", t=0.5, split_u=1.0)
    with pytest.raises(SaeMergeError, match="SLERP weight t"):
        m2n2_crossover_checkpoints(a, b, tmp_path / "y", t=1.5, split_u=0.5)
