"""Helpers shared by the checkpoint operations: opening inputs, progress, row blocks.

The ops' device is :func:`saemerge.devices.torch_device` (``resolve_device`` here is its old name).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from saemerge.checkpoint import CheckpointReader, CheckpointWriter, TensorInfo, check_compatible
from saemerge.core.blocks import row_blocks
from saemerge.core.hashing import TensorHasher
from saemerge.devices import torch_device
from saemerge.errors import SaeMergeError

log = logging.getLogger(__name__)

resolve_device = torch_device  # the old name, kept for one release


def open_compatible(
    paths: Sequence[str | Path], base: str | Path | None = None
) -> tuple[list[CheckpointReader], CheckpointReader | None]:
    """Open checkpoints (and the base) and require identical names, shapes and dtypes."""
    readers = [CheckpointReader(p) for p in paths]
    base_reader = CheckpointReader(base) if base is not None else None
    check_compatible(readers + ([base_reader] if base_reader else []))
    return readers, base_reader


def progress(names: Sequence[str], desc: str):
    """tqdm over tensor names; quiet when stderr is not a terminal and logging is not verbose."""
    return tqdm(names, desc=desc, unit="tensor", leave=False, disable=None)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t if t.device == device else t.to(device, non_blocking=True)


# ------------------------------------------------------------------------- row blocks


def resolve_block_elems(block_elems: int | None) -> int:
    """The block size in entries: the default when None; SaeMergeError when below 1."""
    from saemerge.core.blocks import DEFAULT_BLOCK_ELEMS

    if block_elems is None:
        return DEFAULT_BLOCK_ELEMS
    if int(block_elems) < 1:
        raise SaeMergeError(f"--block-size {block_elems}: expected at least 1 entry")
    return int(block_elems)


def tensor_spans(info: TensorInfo, block_elems: int) -> list[tuple[int, int]]:
    """Row blocks of one tensor; a single span means "process it whole"."""
    return row_blocks(info.shape, block_elems)


def read_span(
    reader: CheckpointReader, name: str, span: tuple[int, int], whole: bool, device: torch.device
) -> torch.Tensor:
    """A tensor (``whole``) or its rows ``span``, on ``device``."""
    t = reader.get(name) if whole else reader.get_rows(name, *span)
    return to_device(t, device)


def emit_tensor(
    out: CheckpointWriter,
    hasher: TensorHasher,
    info: TensorInfo,
    blocks: Iterable[tuple[int, torch.Tensor]],
    whole: bool,
) -> None:
    """Write one output tensor and feed the hasher, from ``(row_start, block)`` pairs in row order.

    ``whole``: the single pair is the entire tensor (written with ``write``, as before blocks).
    """
    if whole:
        ((_, y),) = blocks
        y = y.cpu()
        hasher.update(info.name, y)
        out.write(info.name, y)
        return
    hasher.begin(info.name, info.dtype, info.shape)
    for row_start, y in blocks:
        y = y.cpu()
        hasher.feed(y)
        out.write_block(info.name, row_start, y)
        del y
    hasher.end()
