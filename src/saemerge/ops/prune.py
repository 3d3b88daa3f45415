"""Magnitude pruning of a whole checkpoint (SAE-SPEC §1), streamed tensor by tensor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from saemerge.checkpoint import DEFAULT_MAX_SHARD_BYTES, CheckpointReader, CheckpointWriter
from saemerge.core.hashing import TensorHasher
from saemerge.core.prune import GlobalCutState, apply_global_cut, apply_mask, is_prunable, prune_tensor, select_global_cut
from saemerge.core.sparsity import SparsityAccumulator
from saemerge.errors import SaeMergeError
from saemerge.ops.common import open_compatible, progress, resolve_device, to_device

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


class ModelPruner:
    """Prunes one model's prunable tensors to `sparsity`, per tensor or by a model-wide cut.

    A global cut resolves ties by global flat index, so it is applied to the tensors in the
    same order in every pass; :meth:`start_pass` resets its place.
    """

    def __init__(self, sparsity: float, cut=None):
        self.sparsity, self.cut, self.state = sparsity, cut, GlobalCutState()

    def start_pass(self) -> None:
        self.state = GlobalCutState()

    def __call__(self, x: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        if self.cut is None:
            return prune_tensor(x, self.sparsity, base=b)
        delta = x.float() - b.float() if b is not None else x.float()
        return apply_mask(x, apply_global_cut(delta, self.cut, self.state), base=b)


def global_pruner(values: Callable[[], Iterator[torch.Tensor]], sparsity: float) -> "ModelPruner":
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

    Returns:
        {"content_hash", "sparsity" (zero_count over prunable tensors, in `space`), "space", "granularity"}.
    """
    space = resolve_space(space, base is not None)
    granularity = check_granularity(granularity)
    dev = resolve_device(device)
    (reader,), base_reader = open_compatible([src], base if space == "delta" else None)
    prunable = [i.name for i in reader.infos if is_prunable(i.name, i.shape)]

    def base_of(name: str) -> torch.Tensor | None:
        return to_device(base_reader.get(name), dev) if base_reader is not None else None

    def deltas():
        for name in prunable:
            b = base_of(name)
            x = to_device(reader.get(name), dev).float()
            yield x - b.float() if b is not None else x

    pruner = global_pruner(deltas, sparsity) if granularity == "global" else ModelPruner(sparsity)
    hasher = TensorHasher()
    measured = SparsityAccumulator("zero_count")
    log.info("pruning %s to sparsity %.4g (%s space, %s granularity)", src, sparsity, space, granularity)
    with CheckpointWriter(dst, reader.infos, side_files_from=reader.path, max_shard_bytes=max_shard_bytes) as out:
        for name in progress(reader.names, "prune"):
            x = to_device(reader.get(name), dev)
            if is_prunable(name, tuple(x.shape)):
                b = base_of(name)
                x = pruner(x, b)
                measured.add(x.float() - b.float() if b is not None else x)
            x = x.cpu()
            hasher.update(name, x)
            out.write(name, x)
            del x
    return {
        "content_hash": hasher.hexdigest(),
        "sparsity": measured.value(),
        "space": space,
        "granularity": granularity,
    }
