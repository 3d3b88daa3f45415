"""The M2N2 crossover of two checkpoints (SAE-SPEC §7, M2N2), streamed tensor by tensor.

As in the authors' code, the parameters are one flattened vector (tensors laid end to end in
:func:`~saemerge.core.m2n2.tensor_order`, each row-major): SLERP's angle is taken once over
that whole vector, and the child is SLERP(A, B, t) on the entries before a random split index
and SLERP(B, A, t) = SLERP(A, B, 1 − t) from it on; the split may fall inside a tensor.

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

Two passes over the parents: pass 1 sums the dot product and the norms of the whole vector
(float64 per row, exactly rounded totals), pass 2 writes the child. Tensors above
``block_elems`` entries are read in row blocks; the output is bit-identical whatever the block size.
"""

from __future__ import annotations

import logging
from pathlib import Path

from saemerge.checkpoint import DEFAULT_MAX_SHARD_BYTES, CheckpointWriter
from saemerge.core.blocks import BlockSparsity
from saemerge.core.hashing import TensorHasher
from saemerge.core.m2n2 import SlerpStats, crossover_coefficients, flat_offsets, split_combine, split_index
from saemerge.core.prune import is_prunable
from saemerge.core.sparsity import get_measure
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
        split_u: the split point as a fraction in [0, 1) of the flattened parameter vector:
            entry ``k = floor(split_u · n)`` is the first to get SLERP(B, A, t).
        base: the experts' base, read only to measure the child's ρ in delta space.
        measure: the sparsity measure of ρ (``zero_count`` or ``hoyer``).
        block_elems: tensors above this many entries are streamed in row blocks.

    Returns:
        {"content_hash", "rho" (global ρ of the child's prunable tensors), "t", "split"
         (flat index k), "n_entries", "split_tensor" (the tensor that holds entry k),
         "spherical" (False: the parents are colinear or one has norm 0, so linear interpolation)}.
    """
    get_measure(measure)
    if not 0.0 <= float(split_u) < 1.0:
        raise SaeMergeError(f"split point {split_u}: must lie in [0, 1)")
    if not 0.0 <= float(t) <= 1.0:
        raise SaeMergeError(f"SLERP weight t {t}: must lie in [0, 1]")
    dev = torch_device(device)
    block = resolve_block_elems(block_elems)
    (ra, rb), base_reader = open_compatible([parent_a, parent_b], base)
    names = ra.names
    numels = {name: ra.info(name).numel for name in names}
    offsets = flat_offsets(names, numels)
    split = split_index(split_u, sum(numels.values()))
    stats = SlerpStats()
    for name in progress(names, "m2n2 angle"):  # pass 1: one angle over the whole vector
        spans = tensor_spans(ra.info(name), block)
        for span in spans:
            whole = len(spans) == 1
            stats.add(read_span(ra, name, span, whole, dev), read_span(rb, name, span, whole, dev))
    before, after, spherical = crossover_coefficients(stats, float(t))
    acc = BlockSparsity(measure)
    hasher = TensorHasher()

    def child_blocks(name: str, spans: list, row_elems: int, prunable: bool):
        whole = len(spans) == 1
        for span in spans:
            a, b = read_span(ra, name, span, whole, dev), read_span(rb, name, span, whole, dev)
            child = split_combine(a, b, before, after, split - offsets[name] - span[0] * row_elems)
            if prunable:  # ρ in the space of SAE-SPEC §2: the task vector when a base is given
                x = child.float()
                if base_reader is not None:
                    x = x - read_span(base_reader, name, span, whole, dev).float()
                acc.add(x)
                del x
            yield span[0], child
            del a, b, child

    with CheckpointWriter(dst, ra.infos, side_files_from=ra.path, max_shard_bytes=max_shard_bytes) as out:
        for name in progress(names, "m2n2 crossover"):  # pass 2: the child
            info = ra.info(name)
            spans = tensor_spans(info, block)
            row_elems = info.row_numel
            prunable = is_prunable(name, info.shape)
            if prunable:
                acc.begin()
            emit_tensor(out, hasher, info, child_blocks(name, spans, row_elems, prunable), len(spans) == 1)
            if prunable:
                acc.end()
    split_tensor = max((n for n in names if offsets[n] <= split), key=lambda n: offsets[n])
    return {
        "content_hash": hasher.hexdigest(),
        "rho": acc.value() if acc.tensors else 0.0,
        "t": float(t),
        "split": split,
        "n_entries": sum(numels.values()),
        "split_tensor": split_tensor,
        "spherical": spherical,
    }
