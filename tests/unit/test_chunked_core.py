"""Row-block building blocks: reading/writing rows, hashing in blocks, selection and ρ over blocks.

Each test compares the blockwise form with the whole-tensor one, bit for bit.
"""

import random

import pytest
import torch
from safetensors.torch import load_file, save_file

from saemerge.checkpoint import CheckpointReader, CheckpointWriter
from saemerge.core import sparsity
from saemerge.core.baselines import dare_drop, tensor_generator
from saemerge.core.blocks import BlockSparsity, TensorMoments, parse_block_size, row_blocks
from saemerge.core.hashing import TensorHasher
from saemerge.core.prune import (
    GlobalCutState,
    apply_global_cut,
    keep_count,
    magnitude_mask,
    select_cut,
    select_global_cut,
    top_k_mask,
)
from saemerge.core.sparsity import SparsityAccumulator, moments
from saemerge.errors import SaeMergeError
from saemerge.ops.blockmerge import _generator_states

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


def _blocks(x: torch.Tensor, block_elems: int) -> list[torch.Tensor]:
    return [x[a:b] for a, b in row_blocks(tuple(x.shape), block_elems)]


# ------------------------------------------------------------------------- row blocks


@pytest.mark.parametrize("shape", [(10, 7), (1, 50), (13,), (), (0, 4), (5, 0), (4, 3, 2)])
@pytest.mark.parametrize("block", [1, 6, 7, 20, 1000])
def test_row_blocks_cover_every_row_once_within_the_size(shape, block):
    spans = row_blocks(shape, block)
    rows = shape[0] if shape else 1
    assert spans[0][0] == 0 and spans[-1][1] == rows
    assert all(a < b or rows == 0 for a, b in spans) and all(s[1] == t[0] for s, t in zip(spans, spans[1:]))
    row = torch.Size(shape[1:]).numel()
    if len(spans) > 1:  # a block holds at most `block` entries, or one row when a row is larger
        assert all((b - a) * row <= max(block, row) for a, b in spans)
    else:
        assert torch.Size(shape).numel() <= block or rows <= 1


def test_parse_block_size():
    assert parse_block_size("4M") == 4 << 20 and parse_block_size("512k") == 512 << 10
    assert parse_block_size("1000") == 1000 and parse_block_size(7) == 7
    for bad in ("0", "-3", "4Q", "M"):
        with pytest.raises(ValueError):
            parse_block_size(bad)


# ------------------------------------------------------------------------- reader / writer


@pytest.fixture()
def ckpt(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "a.weight": torch.randn(11, 6, generator=g),
        "b.weight": torch.randn(9, 4, generator=g).to(torch.bfloat16),
        "c.vec": torch.randn(23, generator=g).half(),
        "d.idx": torch.arange(12, dtype=torch.int64).reshape(3, 2, 2),
        "e.scalar": torch.tensor(2.5),
    }
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text("{}")
    save_file(tensors, str(tmp_path / "src" / "model.safetensors"))
    return tmp_path / "src", tensors


def test_get_rows_reads_exactly_those_rows(ckpt):
    path, tensors = ckpt
    reader = CheckpointReader(path)
    for name, t in tensors.items():
        info = reader.info(name)
        for a, b in [(0, info.rows), (0, 1), (info.rows - 1, info.rows), (1, max(1, info.rows - 1))]:
            part = reader.get_rows(name, a, b)
            expected = (t.reshape(1) if t.dim() == 0 else t)[a:b]
            assert part.dtype == t.dtype and torch.equal(part, expected), (name, a, b)
    with pytest.raises(ValueError):
        reader.get_rows("a.weight", 5, 12)


def test_get_rows_rejects_a_nan_in_the_block_read(tmp_path):
    t = torch.zeros(6, 3)
    t[4, 1] = float("nan")
    (tmp_path / "config.json").write_text("{}")
    save_file({"w": t}, str(tmp_path / "model.safetensors"))
    reader = CheckpointReader(tmp_path)
    assert torch.equal(reader.get_rows("w", 0, 4), torch.zeros(4, 3))  # only rows 0:4 are read
    with pytest.raises(SaeMergeError, match="tensor w contains NaN"):
        reader.get_rows("w", 3, 6)


def test_write_block_in_any_order_and_sharded_equals_whole_writes(ckpt, tmp_path):
    path, tensors = ckpt
    reader = CheckpointReader(path)
    rnd = random.Random(0)
    with CheckpointWriter(tmp_path / "out", reader.infos, max_shard_bytes=200) as out:
        pieces = []
        for info in reader.infos:
            spans = row_blocks(info.shape, 5)
            pieces += [(info.name, a, reader.get_rows(info.name, a, b)) for a, b in spans]
        rnd.shuffle(pieces)
        for name, a, block in pieces:
            out.write_block(name, a, block)
    again = CheckpointReader(tmp_path / "out")
    for name, t in tensors.items():
        assert torch.equal(again.get(name), t), name
    shards = sorted((tmp_path / "out").glob("*.safetensors"))
    assert len(shards) > 1 and set(load_file(str(shards[0]))) <= set(tensors)  # the reference reader agrees


def test_write_block_refuses_overlap_gap_wrong_shape_and_nan(ckpt, tmp_path):
    path, _ = ckpt
    reader = CheckpointReader(path)
    infos = [reader.info("a.weight")]
    out = CheckpointWriter(tmp_path / "o1", infos)
    out.write_block("a.weight", 0, torch.zeros(4, 6))
    with pytest.raises(SaeMergeError, match="rows 3:5 were already written"):
        out.write_block("a.weight", 3, torch.zeros(2, 6))
    with pytest.raises(SaeMergeError, match="outside 0:11"):
        out.write_block("a.weight", 10, torch.zeros(2, 6))
    with pytest.raises(SaeMergeError, match="expected rows of shape \\[6\\]"):
        out.write_block("a.weight", 4, torch.zeros(2, 5))
    with pytest.raises(SaeMergeError, match="NaN or Inf"):
        out.write_block("a.weight", 4, torch.full((2, 6), float("inf")))
    out.write_block("a.weight", 8, torch.zeros(3, 6))
    with pytest.raises(SaeMergeError, match="only partly written \\(7 of 11 rows\\)"):
        out.close()


# ------------------------------------------------------------------------- hashing


@pytest.mark.parametrize("block", [1, 3, 16, 10_000])
def test_hash_fed_in_blocks_equals_whole(ckpt, block):
    _, tensors = ckpt
    whole, blocked = TensorHasher(), TensorHasher()
    for name in sorted(tensors):
        t = tensors[name]
        whole.update(name, t)
        blocked.begin(name, t.dtype, tuple(t.shape))
        for part in _blocks(t.reshape(1) if t.dim() == 0 else t, block):
            blocked.feed(part)
        blocked.end()
    assert blocked.hexdigest() == whole.hexdigest() and blocked.count == whole.count


def test_hash_blocks_must_add_up():
    h = TensorHasher()
    h.begin("w", torch.float32, (4, 2))
    h.feed(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="16 bytes were never fed"):
        h.end()
    with pytest.raises(ValueError, match="more bytes"):
        h.feed(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="dtype"):
        h.feed(torch.zeros(1, 2, dtype=torch.float16))
    with pytest.raises(ValueError, match="begun but not ended"):
        h.hexdigest()


# ------------------------------------------------------------------------- selection


def _tied(shape, levels, seed):
    """Values drawn from a few levels: most entries tie with many others, the threshold's too."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-levels, levels + 1, shape, generator=g).float() / 8).to(torch.float32)


@pytest.mark.parametrize("block", [1, 7, 64, 10_000])
@pytest.mark.parametrize("shape,levels", [((37, 9), 2), ((40, 16), 50), ((1, 333), 3), ((41,), 1)])
def test_select_cut_over_blocks_equals_top_k_mask(block, shape, levels):
    x = _tied(shape, levels, seed=sum(shape))
    n = x.numel()
    for k in sorted({1, 2, n // 3, n // 2, n - 1, n}):
        cut = select_cut(lambda: iter(_blocks(x, block)), lambda total: k)  # noqa: B023 -- select_cut calls keep() at once, within this k
        state = GlobalCutState()
        mask = torch.cat([apply_global_cut(b, cut, state) for b in _blocks(x, block)])
        assert torch.equal(mask, top_k_mask(x, k)), k
        assert int(mask.sum()) == k


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.6, 0.95])
def test_select_global_cut_over_one_tensors_blocks_equals_magnitude_mask(sparsity):
    x = _tied((50, 12), 4, seed=3).to(torch.bfloat16)
    cut = select_global_cut(lambda: iter(_blocks(x, 30)), sparsity)
    state = GlobalCutState()
    mask = torch.cat([apply_global_cut(b, cut, state) for b in _blocks(x, 30)])
    assert torch.equal(mask, magnitude_mask(x, sparsity))
    assert int(mask.sum()) == keep_count(x.numel(), sparsity)


# ------------------------------------------------------------------------- sparsity


@pytest.mark.parametrize("measure", ["zero_count", "hoyer"])
@pytest.mark.parametrize("chunk", [16, 1 << 24])  # a small moments() chunk makes blocks straddle pieces
def test_block_sparsity_equals_whole_tensor_accumulator(monkeypatch, measure, chunk):
    monkeypatch.setattr(sparsity, "_CHUNK", chunk)
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(33, 7, generator=g) * (torch.rand(33, 7, generator=g) > 0.4) for _ in range(3)]
    xs.append(torch.zeros(5, 3))
    whole, blocked = SparsityAccumulator(measure), BlockSparsity(measure)
    for x, block in zip(xs, [5, 7, 20, 2]):
        rho = whole.add(x)
        blocked.begin()
        for part in _blocks(x, block):
            blocked.add(part)
        assert blocked.end() == rho
    assert blocked.value() == whole.value()


def test_tensor_moments_regroup_to_the_pieces_moments_sums(monkeypatch):
    monkeypatch.setattr(sparsity, "_CHUNK", 10)
    x = torch.randn(47, 3, generator=torch.Generator().manual_seed(2))
    m = TensorMoments("hoyer")
    for part in _blocks(x, 4):
        m.add(part)
    got, want = m.finish(), moments(x)
    assert (got.n, got.zeros, got.l1, got.l2sq) == (want.n, want.zeros, want.l1, want.l2sq)


# ------------------------------------------------------------------------- DARE draws


@pytest.mark.parametrize("block", [1, 6, 100, 10_000])
def test_dare_draws_per_expert_and_block_equal_one_generator_over_whole_tensors(block):
    shape, n_experts, p = (31, 5), 3, 0.7
    deltas = [torch.randn(shape, generator=torch.Generator().manual_seed(e)) for e in range(n_experts)]
    gen = tensor_generator(4, "w")
    whole = [dare_drop(d, p, gen) for d in deltas]  # as baselines.dare draws them
    states = _generator_states(4, "w", 31 * 5, n_experts, chunk=block)
    for e, d in enumerate(deltas):
        g = torch.Generator()
        g.set_state(states[e])
        parts = [dare_drop(part, p, g) for part in _blocks(d, block)]
        assert torch.equal(torch.cat(parts), whole[e]), e
