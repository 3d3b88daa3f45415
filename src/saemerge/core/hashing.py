"""Content hashes: of a checkpoint's tensors, and of a recipe before any work is done.

``TensorHasher`` identifies a model by what it computes with: tensor names, dtypes,
shapes and raw bytes, fed in sorted-name order so that sharding and file layout do not
matter. ``recipe_key`` addresses work by its inputs (method, parameters, input hashes),
so a re-run or a retried step finds the result it would produce.
"""

from __future__ import annotations

import hashlib
import json
import math

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
        self._open: list | None = None  # [name, dtype, bytes still expected] between begin and end
        self.count = 0

    def update(self, name: str, tensor: torch.Tensor) -> None:
        """Add one tensor; ``name`` must sort after the previous one."""
        self.begin(name, tensor.dtype, tuple(tensor.shape))
        self.feed(tensor)
        self.end()

    def begin(self, name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> None:
        """Start a tensor fed in blocks: :meth:`feed` its row-major bytes in order, then :meth:`end`.

        ``begin``/``feed``…/``end`` gives the digest :meth:`update` gives for the whole tensor,
        however the bytes are split.
        """
        if self._open is not None:
            raise ValueError(f"tensor {self._open[0]!r} was begun but not ended")
        if self._last is not None and name <= self._last:
            raise ValueError(f"tensor {name!r} fed after {self._last!r}: feed names in sorted order")
        self._last = name
        nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        header = json.dumps(
            {"name": name, "dtype": str(dtype).removeprefix("torch."), "shape": list(shape), "nbytes": nbytes},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        self._sha.update(len(header).to_bytes(8, "little"))
        self._sha.update(header)
        self._open = [name, dtype, nbytes]

    def feed(self, block: torch.Tensor) -> None:
        """The next bytes of the tensor begun (a block of rows, or any contiguous piece in order)."""
        if self._open is None:
            raise ValueError("feed() without begin()")
        name, dtype, left = self._open
        if block.dtype != dtype:
            raise ValueError(f"tensor {name!r}: block of dtype {block.dtype}, expected {dtype}")
        t = block.detach().to("cpu").contiguous().reshape(-1)
        raw = t.view(torch.uint8) if t.dtype != torch.uint8 else t
        if raw.numel() > left:
            raise ValueError(f"tensor {name!r}: more bytes fed than its shape holds")
        if raw.numel():
            self._sha.update(raw.numpy().data)
        self._open[2] = left - raw.numel()

    def end(self) -> None:
        """Finish the tensor begun; every byte of it must have been fed."""
        if self._open is None:
            raise ValueError("end() without begin()")
        name, _, left = self._open
        if left:
            raise ValueError(f"tensor {name!r}: {left} bytes were never fed")
        self._open = None
        self.count += 1

    def hexdigest(self) -> str:
        """Hex sha256 of everything fed so far."""
        if self._open is not None:
            raise ValueError(f"tensor {self._open[0]!r} was begun but not ended")
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
    text = json.dumps(
        {"v": _RECIPE_VERSION, "parts": parts},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
        ensure_ascii=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()
