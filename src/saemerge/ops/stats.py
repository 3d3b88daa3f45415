"""Read-only measurements of a checkpoint: sparsity (SAE-SPEC §2) and its content hash."""

from __future__ import annotations

from pathlib import Path

from saemerge.checkpoint import CheckpointReader
from saemerge.core.hashing import TensorHasher
from saemerge.core.prune import is_prunable
from saemerge.core.sparsity import SparsityAccumulator, get_measure
from saemerge.ops.common import open_compatible, progress


def checkpoint_sparsity(
    src: str | Path,
    *,
    base: str | Path | None = None,
    measure: str = "zero_count",
    per_tensor: bool = False,
) -> dict:
    """ρ of a checkpoint's prunable tensors: of the task vector when `base` is given, else of the weights.

    Returns:
        {"measure", "space", "global": ρ over all prunable tensors, "tensors": {name: ρ^l} when per_tensor}.
    """
    measure_fn = get_measure(measure)
    (reader,), base_reader = open_compatible([src], base)
    acc = SparsityAccumulator(measure)
    tensors: dict[str, float] = {}
    for name in progress(reader.names, "sparsity"):
        if not is_prunable(name, reader.info(name).shape):
            continue
        x = reader.get(name).float()
        if base_reader is not None:
            x = x - base_reader.get(name).float()
        acc.add(x)
        if per_tensor:
            tensors[name] = measure_fn(x)
    result = {"measure": measure, "space": "delta" if base_reader else "weight", "global": acc.value()}
    if per_tensor:
        result["tensors"] = tensors
    return result


def checkpoint_content_hash(src: str | Path) -> str:
    """The content hash of a checkpoint's tensors (names, dtypes, shapes, bytes), independent of sharding."""
    hasher = TensorHasher()
    with CheckpointReader(src, check_finite=False) as reader:
        for name in reader.names:
            hasher.update(name, reader.get(name))
    return hasher.hexdigest()
