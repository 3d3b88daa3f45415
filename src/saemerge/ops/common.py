"""Helpers shared by the checkpoint operations: devices, opening inputs, progress."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from saemerge.checkpoint import CheckpointReader, check_compatible
from saemerge.errors import SaeMergeError

log = logging.getLogger(__name__)


def resolve_device(device: str | None) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or None (cpu). Asking for CUDA without it is an error, not a fallback."""
    name = (device or "cpu").lower()
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SaeMergeError(f"--device {device}: CUDA was asked for but is not available on this machine")
        return torch.device(name)
    raise SaeMergeError(f"--device {device!r}: expected cpu, cuda or cuda:N")


def open_compatible(paths: Sequence[str | Path], base: str | Path | None = None) -> tuple[list[CheckpointReader], CheckpointReader | None]:
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
