"""Magnitude pruning of a whole checkpoint (SAE-SPEC §1), streamed tensor by tensor (large ones in row blocks)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from saemerge.checkpoint import DEFAULT_MAX_SHARD_BYTES, CheckpointReader, CheckpointWriter
from saemerge.core.blocks import BlockSparsity
from saemerge.core.hashing import TensorHasher
from saemerge.core.prune import (
    GlobalCut,
    GlobalCutState,
    apply_global_cut,
    apply_mask,
    is_prunable,
    prune_tensor,
    select_global_cut,
)
from saemerge.devices import torch_device
from saemerge.errors import SaeMergeError
from saemerge.ops.common import (
    emit_tensor,
    open_compatible,
    progress,
    read_span,
    resolve_block_elems,
    tensor_spans,
)

log = logging.getLogger(__name__)

SPACES = ("delta", "weight")
GRANULARITIES = ("tensor", "global")


def resolve_space(space: str | None, has_base: bool) -> str:
    """SAE-SPEC §1: `delta` when a base is given, else `weight`; delta without a base is an error."""
    space = space or ("delta" if has_base else "weight")
    if space not in SPACES:
        raise SaeMergeError(f"--space {space!r}: expected one of {', '.join(SPACES)}")
    if space == "delta" and not has_base:
        raise SaeMergeError("--space delta needs --base (the model the task vector is taken from)")
    return space


def check_granularity(granularity: str) -> str:
    if granularity not in GRANULARITIES:
        raise SaeMergeError(f"--granularity {granularity!r}: expected one of {', '.join(GRANULARITIES)}")
    return granularity


@dataclass
class TensorCut:
    """The exact per-tensor cut of one tensor streamed in row blocks, and its place in them.

    :meth:`restart` before each pass over the tensor's blocks (ties go to the lowest flat
    index, so the blocks must come in row order every time).
    """

    cut: GlobalCut
    state: GlobalCutState = field(default_factory=GlobalCutState)

    def restart(self) -> None:
        self.state = GlobalCutState()


class ModelPruner:
    """Prunes one model's prunable tensors to `sparsity`, per tensor or by a model-wide cut.

    A global cut resolves ties by global flat index, so it is applied to the tensors (and
    their row blocks) in the same order in every pass; :meth:`start_pass` resets its place.
    Per tensor, a tensor processed whole is pruned with ``prune_tensor``; one streamed in
    row blocks gets its exact cut from :meth:`tensor_cut` first.
    """

    def __init__(self, sparsity: float, cut=None):
        self.sparsity, self.cut, self.state = sparsity, cut, GlobalCutState()

    def start_pass(self) -> None:
        self.state = GlobalCutState()

    def tensor_cut(self, blocks: Callable[[], Iterator[torch.Tensor]]) -> TensorCut | None:
        """Per-tensor granularity: the cut of one tensor from its task-vector blocks (``blocks()``
        is called twice). None with a model-wide cut, which already covers every block."""
        if self.cut is not None:
            return None
        return TensorCut(select_global_cut(blocks, self.sparsity))

    def __call__(self, x: torch.Tensor, b: torch.Tensor | None, tensor_cut: TensorCut | None = None) -> torch.Tensor:
        """Prune a whole tensor, or the next row block of one (pass its ``tensor_cut``)."""
        if tensor_cut is not None:
            cut, state = tensor_cut.cut, tensor_cut.state
        elif self.cut is None:
            return prune_tensor(x, self.sparsity, base=b)
        else:
            cut, state = self.cut, self.state
        delta = x.float() - b.float() if b is not None else x.float()
        return apply_mask(x, apply_global_cut(delta, cut, state), base=b)


def global_pruner(values: Callable[[], Iterator[torch.Tensor]], sparsity: float) -> ModelPruner:
    """A pruner with the exact model-wide cut over the task-vector values `values()` yields."""
    return ModelPruner(sparsity, select_global_cut(values, sparsity))


def prune_checkpoint(
    src: str | Path,
    dst: str | Path,
    sparsity: float,
    *,
    base: str | Path | None = None,
    space: str | None = None,
    granularity: str = "tensor",
    device: str | None = "cpu",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    block_elems: int | None = None,
) -> dict:
    """Prune the prunable tensors of `src` to `sparsity` and write the result to `dst`.

    Args:
        src: checkpoint directory.
        dst: empty or absent local directory to write.
        sparsity: fraction of entries to zero, in [0, 1).
        base: base model; required for (and implies) the default `delta` space.
        space: `delta` (prune the task vector; pruned entries fall back to the base) or `weight`.
        granularity: `tensor` (one threshold per tensor) or `global` (one over the model).
        device: where the selection runs (`cuda` when asked and present).
        block_elems: tensors above this many entries are streamed in row blocks of at most
            this size (default :data:`~saemerge.core.blocks.DEFAULT_BLOCK_ELEMS`); the output
            is bit-identical whatever the size.

    Returns:
        {"content_hash", "sparsity" (zero_count over prunable tensors, in `space`), "space", "granularity"}.
    """
    space = resolve_space(space, base is not None)
    granularity = check_granularity(granularity)
    dev = torch_device(device)
    block = resolve_block_elems(block_elems)
    (reader,), base_reader = open_compatible([src], base if space == "delta" else None)
    spans = {i.name: tensor_spans(i, block) for i in reader.infos}
    prunable = [i.name for i in reader.infos if is_prunable(i.name, i.shape)]

    def rows(r: CheckpointReader, name: str, span) -> torch.Tensor:
        return read_span(r, name, span, len(spans[name]) == 1, dev)

    def base_rows(name: str, span) -> torch.Tensor | None:
        return rows(base_reader, name, span) if base_reader is not None else None

    def deltas(name: str):
        for span in spans[name]:
            b = base_rows(name, span)
            x = rows(reader, name, span).float()
            yield x - b.float() if b is not None else x

    def all_deltas():
        for name in prunable:
            yield from deltas(name)

    pruner = global_pruner(all_deltas, sparsity) if granularity == "global" else ModelPruner(sparsity)
    hasher = TensorHasher()
    measured = BlockSparsity("zero_count")
    log.info("pruning %s to sparsity %.4g (%s space, %s granularity)", src, sparsity, space, granularity)

    def pruned_blocks(name: str, cut: TensorCut | None):
        for span in spans[name]:
            x = rows(reader, name, span)
            b = base_rows(name, span)
            x = pruner(x, b, cut)
            measured.add(x.float() - b.float() if b is not None else x)
            yield span[0], x

    def copied_blocks(name: str):
        for span in spans[name]:
            yield span[0], rows(reader, name, span)

    with CheckpointWriter(dst, reader.infos, side_files_from=reader.path, max_shard_bytes=max_shard_bytes) as out:
        for name in progress(reader.names, "prune"):
            whole = len(spans[name]) == 1
            if is_prunable(name, reader.info(name).shape):
                cut = None if whole else pruner.tensor_cut(functools.partial(deltas, name))
                measured.begin()
                emit_tensor(out, hasher, reader.info(name), pruned_blocks(name, cut), whole)
                measured.end()
            else:
                emit_tensor(out, hasher, reader.info(name), copied_blocks(name), whole)
    return {
        "content_hash": hasher.hexdigest(),
        "sparsity": measured.value(),
        "space": space,
        "granularity": granularity,
    }
