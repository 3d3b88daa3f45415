"""Checkpoint-level operations: stream checkpoints through the pure math of ``saemerge.core``.

Each operation reads its inputs tensor by tensor (:mod:`saemerge.checkpoint`), calls one core
function per tensor, and writes the result into a local directory. Tensors above ``block_elems``
entries (default :data:`saemerge.core.blocks.DEFAULT_BLOCK_ELEMS`) are read, computed, hashed
and written in row blocks with bit-identical results, so peak memory is a few blocks, not a
tensor and not a model. Paths here are local; URIs and atomic publishing are the callers'
(:mod:`saemerge.storage`).
"""

from saemerge.ops.baselines import merge_checkpoints
from saemerge.ops.prune import prune_checkpoint
from saemerge.ops.sae import sae_merge_checkpoints
from saemerge.ops.stats import checkpoint_content_hash, checkpoint_sparsity

__all__ = [
    "checkpoint_content_hash",
    "checkpoint_sparsity",
    "merge_checkpoints",
    "prune_checkpoint",
    "sae_merge_checkpoints",
]
