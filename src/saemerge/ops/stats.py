"""Read-only measurements of a checkpoint: sparsity (SAE-SPEC §2) and its content hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from saemerge.checkpoint import CheckpointReader
from saemerge.core.blocks import BlockSparsity
from saemerge.core.hashing import TensorHasher
from saemerge.core.prune import is_prunable
from saemerge.core.sparsity import get_measure
from saemerge.ops.common import open_compatible, progress, read_span, resolve_block_elems, tensor_spans


def checkpoint_sparsity(
    src: str | Path,
    *,
    base: str | Path | None = None,
    measure: str = "zero_count",
    per_tensor: bool = False,
    block_elems: int | None = None,
) -> dict:
    """ρ of a checkpoint's prunable tensors: of the task vector when `base` is given, else of the weights.

    Large tensors are read in row blocks of at most `block_elems` entries; the figures are
    identical to measuring whole tensors.

    Returns:
        {"measure", "space", "global": ρ over all prunable tensors, "tensors": {name: ρ^l} when per_tensor}.
    """
    get_measure(measure)
    block = resolve_block_elems(block_elems)
    (reader,), base_reader = open_compatible([src], base)
    acc = BlockSparsity(measure)
    tensors: dict[str, float] = {}
    for name in progress(reader.names, "sparsity"):
        info = reader.info(name)
        if not is_prunable(name, info.shape):
            continue
        spans = tensor_spans(info, block)
        acc.begin()
        for span in spans:
            x = read_span(reader, name, span, len(spans) == 1, torch.device("cpu")).float()
            if base_reader is not None:
                x = x - read_span(base_reader, name, span, len(spans) == 1, torch.device("cpu")).float()
            acc.add(x)
            del x
        rho = acc.end()
        if per_tensor:
            tensors[name] = rho
    result: dict[str, Any] = {"measure": measure, "space": "delta" if base_reader else "weight", "global": acc.value()}
    if per_tensor:
        result["tensors"] = tensors
    return result


def checkpoint_content_hash(src: str | Path, *, block_elems: int | None = None) -> str:
    """The content hash of a checkpoint's tensors (names, dtypes, shapes, bytes), independent of sharding.

    Tensors are read in row blocks of at most `block_elems` entries (the hash does not depend on it).
    """
    block = resolve_block_elems(block_elems)
    hasher = TensorHasher()
    with CheckpointReader(src, check_finite=False) as reader:
        for info in reader.infos:
            spans = tensor_spans(info, block)
            if len(spans) == 1:
                hasher.update(info.name, reader.get(info.name))
                continue
            hasher.begin(info.name, info.dtype, info.shape)
            for span in spans:
                hasher.feed(reader.get_rows(info.name, *span))
            hasher.end()
    return hasher.hexdigest()
