"""Content hashes: of a checkpoint's tensors, and of a recipe before any work is done.

``TensorHasher`` identifies a model by what it computes with: tensor names, dtypes,
shapes and raw bytes, fed in sorted-name order so that sharding and file layout do not
matter. ``recipe_key`` addresses work by its inputs (method, parameters, input hashes),
so a re-run or a retried step finds the result it would produce.
"""

from __future__ import annotations

import hashlib
import json

import torch

_HASH_VERSION = b"saemerge-tensors-v1\x00"
_RECIPE_VERSION = "saemerge-recipe-v1"


class TensorHasher:
    """Streaming sha256 over ``(name, tensor)`` pairs in strictly increasing name order.

    Each tensor contributes a length-prefixed JSON header (name, dtype, shape, byte
    count) followed by its raw little-endian bytes (bf16/fp16 as their 2-byte patterns,
    viewed as bytes without conversion), so two checkpoints hash equal iff they hold the
    same names with bit-identical tensors of the same dtype and shape. Order is enforced
    (a ValueError otherwise) because the same tensors in another order must not produce
    another hash silently: sort the names (``sorted(names)``, Python string order) first.

    >>> h = TensorHasher(); h.update("a", torch.zeros(2)); len(h.hexdigest())
    64
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256(_HASH_VERSION)
        self._last: str | None = None
        self.count = 0

    def update(self, name: str, tensor: torch.Tensor) -> None:
        """Add one tensor; ``name`` must sort after the previous one."""
        if self._last is not None and name <= self._last:
            raise ValueError(f"tensor {name!r} fed after {self._last!r}: feed names in sorted order")
        self._last = name
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        raw = t.view(torch.uint8) if t.dtype != torch.uint8 else t
        header = json.dumps(
            {"name": name, "dtype": str(tensor.dtype).removeprefix("torch."),
             "shape": list(tensor.shape), "nbytes": raw.numel()},
            sort_keys=True, separators=(",", ":"),
        ).encode()
        self._sha.update(len(header).to_bytes(8, "little"))
        self._sha.update(header)
        if raw.numel():
            self._sha.update(raw.numpy().data)
        self.count += 1

    def hexdigest(self) -> str:
        """Hex sha256 of everything fed so far."""
        return self._sha.hexdigest()


def state_dict_hash(tensors: dict[str, torch.Tensor]) -> str:
    """Content hash of an in-memory ``{name: tensor}`` (same value as streaming it sorted)."""
    h = TensorHasher()
    for name in sorted(tensors):
        h.update(name, tensors[name])
    return h.hexdigest()


def recipe_key(**parts: object) -> str:
    """Stable sha256 hex of a JSON-able recipe, e.g. ``recipe_key(method="ties", params={...},
    inputs=[hash_a, hash_b])``.

    Keys are sorted and floats printed in their shortest round-trip form, so the same
    recipe gives the same key in any process; tuples count as lists. NaN/inf and
    non-JSON values raise (ValueError / TypeError) rather than hash ambiguously.
    """
    text = json.dumps({"v": _RECIPE_VERSION, "parts": parts}, sort_keys=True,
                      separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
