"""The M2N2 crossover of two checkpoints (SAE-SPEC §7, M2N2), streamed tensor by tensor.

Each tensor of the child is the SLERP of the parents' tensors (:mod:`saemerge.core.m2n2`)
with weight ``t`` towards B before the split point in the model's tensor order and ``1 − t``
from it on (SLERP(B, A, t) = SLERP(A, B, 1 − t)).

**Space: weights, not task vectors.** M2N2 interpolates the models' parameters: the authors'
code SLERPs the parameter vectors themselves (its from-scratch runs have no base model at
all) and the paper merges the fine-tuned LLMs' weights the same way, which is also what the
usual SLERP merge does (mergekit ``slerp``). SLERP of task vectors against the base is a
different operator (mergekit ``nuslerp`` with a base) that the comparator should not quietly
become. Consequences, kept consistently: the base is not read for the merge, only to measure
the child's ρ in delta space (SAE-SPEC §2, like every other model of the run; without a base,
ρ of the weights); and since
``c_A + c_B ≠ 1`` off the linear fallback, a position that both parents left at the base does
not stay exactly at the base, so children of pruned parents are dense (ρ ≈ 0).

A tensor of at most ``block_elems`` entries is read once. A larger one is read twice in row
blocks: pass 1 sums the dot product and the norms (float64 per row, exactly rounded totals),
pass 2 writes ``c_A·A + c_B·B`` block by block. The output is bit-identical whatever the block size.
"""

from __future__ import annotations

import logging
from pathlib import Path

from saemerge.checkpoint import DEFAULT_MAX_SHARD_BYTES, CheckpointWriter
from saemerge.core.blocks import BlockSparsity
from saemerge.core.hashing import TensorHasher
from saemerge.core.m2n2 import SlerpStats, combine, crossover_weights, split_index, tensor_order
from saemerge.core.prune import is_prunable
from saemerge.core.sparsity import get_measure
from saemerge.errors import SaeMergeError
from saemerge.ops.common import (
    emit_tensor,
    open_compatible,
    progress,
    read_span,
    resolve_block_elems,
    resolve_device,
    tensor_spans,
)

log = logging.getLogger(__name__)


def m2n2_crossover_checkpoints(
    parent_a: str | Path,
    parent_b: str | Path,
    dst: str | Path,
    *,
    t: float,
    split_u: float,
    base: str | Path | None = None,
    measure: str = "zero_count",
    device: str | None = "cpu",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    block_elems: int | None = None,
) -> dict:
    """Write the M2N2 child of two parents to `dst`.

    Args:
        parent_a, parent_b: checkpoint directories (same names, shapes and dtypes).
        t: SLERP weight towards B before the split point, in [0, 1].
        split_u: the split point as a fraction in [0, 1): tensor ``k = floor(split_u · n)`` of
            the tensor order (:func:`~saemerge.core.m2n2.tensor_order`) is the first after it.
        base: the experts' base, read only to measure the child's ρ in delta space.
        measure: the sparsity measure of ρ (``zero_count`` or ``hoyer``).
        block_elems: tensors above this many entries are streamed in row blocks.

    Returns:
        {"content_hash", "rho" (global ρ of the child's prunable tensors), "t", "split"
         (index k), "n_tensors", "first_after_split" (name of tensor k), "linear_tensors"
         (how many fell back to linear interpolation: colinear or zero-norm)}.
    """
    get_measure(measure)
    if not 0.0 <= float(split_u) < 1.0:
        raise SaeMergeError(f"split point {split_u}: must lie in [0, 1)")
    if not 0.0 <= float(t) <= 1.0:
        raise SaeMergeError(f"SLERP weight t {t}: must lie in [0, 1]")
    dev = resolve_device(device)
    block = resolve_block_elems(block_elems)
    (ra, rb), base_reader = open_compatible([parent_a, parent_b], base)
    names = ra.names
    split = split_index(split_u, len(names))
    weights = crossover_weights(names, split, float(t))
    acc = BlockSparsity(measure)
    hasher = TensorHasher()
    linear = 0

    def parents(name: str, spans: list, held: list | None):
        """(span, A block, B block) in row order: the blocks held in memory, or read again."""
        if held is not None:
            yield from held
            return
        for span in spans:
            yield span, read_span(ra, name, span, False, dev), read_span(rb, name, span, False, dev)

    def child_blocks(name: str, spans: list, held: list | None, c_a: float, c_b: float, prunable: bool):
        for span, a, b in parents(name, spans, held):
            child = combine(a, b, c_a, c_b)
            if prunable:  # ρ in the space of SAE-SPEC §2: the task vector when a base is given
                x = child.float()
                if base_reader is not None:
                    x = x - read_span(base_reader, name, span, held is not None, dev).float()
                acc.add(x)
                del x
            yield span[0], child
            del a, b, child

    with CheckpointWriter(dst, ra.infos, side_files_from=ra.path, max_shard_bytes=max_shard_bytes) as out:
        for name in progress(names, "m2n2 crossover"):
            info = ra.info(name)
            spans = tensor_spans(info, block)
            whole = len(spans) == 1
            held = (
                [(spans[0], read_span(ra, name, spans[0], True, dev), read_span(rb, name, spans[0], True, dev))]
                if whole
                else None
            )
            stats = SlerpStats()
            for _, a, b in parents(name, spans, held):  # pass 1 (blocks) or the tensors in hand
                stats.add(a, b)
            c_a, c_b, spherical = stats.coefficients(weights[name])
            linear += not spherical
            prunable = is_prunable(name, info.shape)
            if prunable:
                acc.begin()
            emit_tensor(out, hasher, info, child_blocks(name, spans, held, c_a, c_b, prunable), whole)
            if prunable:
                acc.end()
            del held
    order = tensor_order(names)
    return {
        "content_hash": hasher.hexdigest(),
        "rho": acc.value() if acc.tensors else 0.0,
        "t": float(t),
        "split": split,
        "n_tensors": len(names),
        "first_after_split": order[split],
        "linear_tensors": linear,
    }
