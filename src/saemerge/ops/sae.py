"""The SAE pair merge of two checkpoints (SAE-SPEC §3), streamed tensor by tensor.

Both parents are pruned (copies, never written) to the generation's sparsity s_t, merged with a
per-tensor mixing ratio λ^l that weighs each parent's score plus β·ρ, and the child is pruned
to s_t again. The global ρ of each pruned parent must be known before the first λ, so the
parents are streamed twice: pass 1 measures ρ, pass 2 merges and writes. With `global`
granularity one more pass per parent (and one for the child) finds the model-wide cut.

Tensors above ``block_elems`` entries go through every pass in row blocks. Per-tensor
granularity then needs each one's cuts before its blocks are pruned: the parents' (two passes
over the parent, once) and the child's (two passes that recompute its merged blocks, just
before writing it). Results are bit-identical to whole tensors (:mod:`saemerge.core.blocks`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from saemerge.checkpoint import DEFAULT_MAX_SHARD_BYTES, CheckpointReader, CheckpointWriter
from saemerge.core.blocks import BlockSparsity
from saemerge.core.hashing import TensorHasher
from saemerge.core.prune import is_prunable
from saemerge.core.sae import omega, sae_lambda, sae_merge_tensor
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
from saemerge.ops.prune import ModelPruner, global_pruner

log = logging.getLogger(__name__)


def _check_score(flag: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise SaeMergeError(f"{flag} {value}: a performance score must lie in [0, 1]")
    return float(value)


def sae_merge_checkpoints(
    parent_a: str | Path,
    parent_b: str | Path,
    score_a: float,
    score_b: float,
    dst: str | Path,
    *,
    base: str | Path | None = None,
    sparsity: float = 0.0,
    scoring: str = "global",
    beta: float = 1.0,
    attraction: str = "linear",
    measure: str = "zero_count",
    granularity: str = "tensor",
    device: str | None = "cpu",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    block_elems: int | None = None,
) -> dict:
    """Merge two parents into one child with SAE and write it to `dst`.

    Args:
        parent_a, parent_b: checkpoint directories.
        score_a, score_b: the parents' performance on the current optimisation set, in [0, 1].
        base: the experts' base; sparsity and pruning are measured in delta space when given.
        sparsity: the generation's s_t; parents (copies) and child are pruned to it.
        scoring: `global` (ω = β·ρ(model)) or `local` (ω^l = β·ρ^l per prunable tensor).
        beta: weight of sparsity in the mixing ratio.
        attraction: `linear` (the formula literally) or `fill` (a slot pruned in one parent
            takes the other's value unscaled).
        measure: `zero_count` or `hoyer`.
        granularity: pruning threshold per `tensor` or `global`.
        block_elems: tensors above this many entries are streamed in row blocks of at most
            this size (default :data:`~saemerge.core.blocks.DEFAULT_BLOCK_ELEMS`); the output
            and every returned figure are bit-identical whatever the size.

    Returns:
        {"content_hash", "rho_a", "rho_b" (global ρ of the pruned parents), "rho" (child),
         "lambda_mean", "lambda_min", "lambda_max", "lambdas" (per tensor)}.
    """
    score_a, score_b = _check_score("--scores (A)", score_a), _check_score("--scores (B)", score_b)
    dev = torch_device(device)
    block = resolve_block_elems(block_elems)
    (ra, rb), base_reader = open_compatible([parent_a, parent_b], base)
    names = ra.names
    spans = {i.name: tensor_spans(i, block) for i in ra.infos}
    prunable = [n for n in names if is_prunable(n, ra.info(n).shape)]
    prunable_set = set(prunable)

    def rows(reader: CheckpointReader, name: str, span) -> torch.Tensor:
        """A tensor processed whole, or one row block of it."""
        return read_span(reader, name, span, len(spans[name]) == 1, dev)

    def base_rows(name: str, span) -> torch.Tensor | None:
        return rows(base_reader, name, span) if base_reader is not None else None

    def as_space(x: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        return x.float() - b.float() if b is not None else x.float()

    def deltas(reader: CheckpointReader, name: str):
        """One tensor's values in the pruning space, block by block (called again for each pass)."""
        return lambda: (as_space(rows(reader, name, sp), base_rows(name, sp)) for sp in spans[name])

    def all_deltas(reader: CheckpointReader):
        return lambda: (d for n in prunable for d in deltas(reader, n)())

    if granularity == "global":
        prune_a, prune_b = global_pruner(all_deltas(ra), sparsity), global_pruner(all_deltas(rb), sparsity)
    else:
        prune_a, prune_b = ModelPruner(sparsity), ModelPruner(sparsity)

    # Per-tensor cuts of the parents for prunable tensors streamed in blocks (None otherwise).
    parent_cuts: dict[str, tuple] = {}
    for name in prunable:
        if len(spans[name]) > 1:
            parent_cuts[name] = (prune_a.tensor_cut(deltas(ra, name)), prune_b.tensor_cut(deltas(rb, name)))

    def start_pass() -> None:
        prune_a.start_pass()
        prune_b.start_pass()

    def pruned_parents(name: str):
        """(pruned A, pruned B, base) for each block of `name`, in row order (one pass over it)."""
        cut_a, cut_b = parent_cuts.get(name, (None, None))
        for cut in (cut_a, cut_b):
            if cut is not None:
                cut.restart()
        for span in spans[name]:
            a, b, base_t = rows(ra, name, span), rows(rb, name, span), base_rows(name, span)
            if name in prunable_set:
                a, b = prune_a(a, base_t, cut_a), prune_b(b, base_t, cut_b)
            yield span, a, b, base_t

    # Pass 1: ρ of each pruned parent, per tensor and over all prunable tensors.
    acc_a, acc_b = BlockSparsity(measure), BlockSparsity(measure)
    rho_a_l: dict[str, float] = {}
    rho_b_l: dict[str, float] = {}
    start_pass()
    for name in progress(prunable, "sae pass 1 (sparsity)"):
        acc_a.begin()
        acc_b.begin()
        for _, a, b, base_t in pruned_parents(name):
            acc_a.add(as_space(a, base_t))
            acc_b.add(as_space(b, base_t))
            del a, b, base_t
        rho_a_l[name], rho_b_l[name] = acc_a.end(), acc_b.end()  # the tensor's own ρ
    rho_a, rho_b = acc_a.value(), acc_b.value()

    def lam_for(name: str) -> float:
        if scoring == "local" and name in prunable_set:
            wa, wb = omega(beta, rho_a_l[name]), omega(beta, rho_b_l[name])
        else:
            wa, wb = omega(beta, rho_a), omega(beta, rho_b)
        return sae_lambda(score_a, score_b, wa, wb)

    def merged(name: str):
        """(span, child block before its own pruning, base block) in row order."""
        lam = lam_for(name)
        for span, a, b, base_t in pruned_parents(name):
            yield span, sae_merge_tensor(a, b, lam, attraction=attraction, base=base_t), base_t

    if granularity == "global":
        # The child's model-wide cut needs every merged prunable tensor first: more passes.
        def child_deltas():
            start_pass()
            for n in prunable:
                for _, child, base_t in merged(n):
                    yield as_space(child, base_t)

        prune_child = global_pruner(child_deltas, sparsity)
    else:
        prune_child = ModelPruner(sparsity)

    # Pass 2: merge, prune the child, write.
    hasher = TensorHasher()
    acc_child = BlockSparsity(measure)
    lambdas: dict[str, float] = {}

    def child_blocks(name: str, cut):
        for span, child, base_t in merged(name):
            if name in prunable_set:
                child = prune_child(child, base_t, cut)
                acc_child.add(as_space(child, base_t))
            yield span[0], child
            del child, base_t  # two large tensors (lm_head, embed_tokens) follow each other

    def child_values(name: str):
        """The child's values of `name` in the pruning space, block by block (called again for each pass)."""
        return lambda: (as_space(c, bt) for _, c, bt in merged(name))

    with CheckpointWriter(dst, ra.infos, side_files_from=ra.path, max_shard_bytes=max_shard_bytes) as out:
        start_pass()
        prune_child.start_pass()
        for name in progress(names, "sae merge"):
            whole = len(spans[name]) == 1
            lambdas[name] = lam_for(name)
            cut = None
            if name in prunable_set:
                if not whole:  # per-tensor granularity: the child's cut over its recomputed blocks
                    cut = prune_child.tensor_cut(child_values(name))
                acc_child.begin()
            emit_tensor(out, hasher, ra.info(name), child_blocks(name, cut), whole)
            if name in prunable_set:
                acc_child.end()
    values = list(lambdas.values())
    return {
        "content_hash": hasher.hexdigest(),
        "rho_a": rho_a,
        "rho_b": rho_b,
        "rho": acc_child.value(),
        "lambda_mean": sum(values) / len(values),
        "lambda_min": min(values),
        "lambda_max": max(values),
        "lambdas": lambdas,
    }
