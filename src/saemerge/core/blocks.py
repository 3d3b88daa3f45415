"""Row blocks: process a large tensor in pieces with results bit-identical to the whole.

The streamed operations (:mod:`saemerge.ops`) cut every tensor above ``block_elems``
entries into blocks of whole rows (first dimension) and run the same math block by block.
That is exact because:

* elementwise math (task vectors, λ mixing, sign election, disjoint mean, DARE rescale)
  gives each entry the same float32 result wherever the block starts;
* a top-k selection over a tensor becomes :func:`~saemerge.core.prune.select_cut` over its
  blocks, then :func:`~saemerge.core.prune.apply_global_cut` block by block in order: the
  radix histograms are exact counts and threshold ties go to the lowest flat index either way;
* DARE's uniform draws are serial (one draw per entry, row-major), so drawing a tensor's
  blocks in order from one generator gives the whole tensor's draw;
* :class:`TensorMoments` re-chunks blocks to the pieces :func:`~saemerge.core.sparsity.moments`
  sums, so ρ (zero_count exactly; hoyer's float64 sums too) matches the whole tensor.

Everything here is pure: tensors in, tensors (or numbers) out.
"""

from __future__ import annotations

import math

import torch

from saemerge.core import sparsity as _sparsity
from saemerge.core.sparsity import Moments, get_measure
from saemerge.errors import SaeMergeError
from saemerge.util.units import parse_size

# 2 Mi entries: 8 MB per float32 block. The streamed merges hold up to ~8 block-sized float32
# temporaries at a time (TIES, SAE), and the C heap keeps some freed blocks resident, so peak
# memory stays ~100-170 MB above the interpreter's whatever the model (measured on the 100M-
# parameter benchmark: 4 Mi entries gave ~200 MB above it). Smaller blocks cost time only when
# per-tensor top-k selections must re-read a tensor (prunable tensors above the block size).
DEFAULT_BLOCK_ELEMS = 1 << 21


def row_blocks(shape: tuple[int, ...], block_elems: int) -> list[tuple[int, int]]:
    """Row ranges ``[(start, stop), ...]`` covering a tensor in blocks of at most ``block_elems`` entries.

    A tensor of at most ``block_elems`` entries is one block (all its rows); so is a scalar
    (one "row"). A row longer than ``block_elems`` is a block on its own: blocks never split rows.
    """
    shape = tuple(shape)
    rows = shape[0] if shape else 1
    numel = math.prod(shape)
    if numel <= block_elems or rows <= 1:
        return [(0, rows)]
    per = max(1, block_elems // max(1, math.prod(shape[1:])))
    return [(r, min(r + per, rows)) for r in range(0, rows, per)]


def parse_block_size(text: str | int) -> int:
    """'4M', '512K', '1G' (binary multiples of entries) or a plain count -> entries (>= 1).

    The spelling is :func:`saemerge.util.units.parse_size`'s.

    Raises:
        ValueError: a message without the text, for the caller to prefix with its flag.
    """
    try:
        value = parse_size(text)
    except SaeMergeError:
        raise ValueError("expected a count of entries such as 4M or 1048576") from None
    if value < 1:
        raise ValueError("expected at least 1 entry")
    return value


class TensorMoments:
    """:func:`~saemerge.core.sparsity.moments` of one tensor fed as consecutive row-major blocks.

    The result equals ``moments(whole_tensor)`` bit for bit: zeros and counts are integers,
    and for measures that use the float64 sums (hoyer) the blocks are regrouped into the same
    pieces ``moments`` sums (``sparsity._CHUNK`` entries from the tensor's start), staging at
    most one piece. ``zero_count`` needs no sums, so it stages nothing and counts zeros only.

    Args:
        measure: ``zero_count`` or ``hoyer``.
    """

    def __init__(self, measure: str = "zero_count") -> None:
        get_measure(measure)
        self.measure = measure
        self._sums = measure != "zero_count"
        self.result = Moments()
        self._stage: list[torch.Tensor] = []
        self._staged = 0

    def add(self, block: torch.Tensor) -> None:
        """The next block (any shape; read in row-major order)."""
        flat = block.detach().reshape(-1)
        if not self._sums:
            self.result.n += flat.numel()
            self.result.zeros += int((flat == 0).sum())
            return
        chunk = _sparsity._CHUNK
        while flat.numel():
            take = min(chunk - self._staged, flat.numel())
            piece, flat = flat[:take], flat[take:]
            if not self._staged and take == chunk:
                self.result += _sparsity.moments(piece)  # a whole piece: no staging
                continue
            self._stage.append(piece.clone())
            self._staged += take
            if self._staged == chunk:
                self._flush()

    def _flush(self) -> None:
        if self._stage:
            self.result += _sparsity.moments(torch.cat(self._stage))
        self._stage, self._staged = [], 0

    def finish(self) -> Moments:
        """The tensor's moments (call once, after its last block)."""
        self._flush()
        return self.result


class BlockSparsity:
    """Global ρ over tensors fed block by block: the blockwise form of ``SparsityAccumulator``.

    ``begin()``, ``add(block)``… then ``end()`` returns that tensor's own ρ (for local
    scoring); :meth:`value` is ρ over every tensor ended so far. Values equal
    ``SparsityAccumulator.add(whole)`` / ``.value()`` exactly.
    """

    def __init__(self, measure: str = "zero_count") -> None:
        get_measure(measure)
        self.measure = measure
        self.moments = Moments()
        self.tensors = 0
        self._current: TensorMoments | None = None

    def begin(self) -> None:
        self._current = TensorMoments(self.measure)

    def add(self, block: torch.Tensor) -> None:
        if self._current is None:
            raise ValueError("add() without begin()")
        self._current.add(block)

    def end(self) -> float:
        if self._current is None:
            raise ValueError("end() without begin()")
        m = self._current.finish()
        self._current = None
        self.moments += m
        self.tensors += 1
        return _sparsity._FROM_MOMENTS[self.measure](m)

    def add_tensor(self, x: torch.Tensor) -> float:
        """A whole tensor at once (one block); returns its ρ."""
        self.begin()
        self.add(x)
        return self.end()

    def value(self) -> float:
        return _sparsity._FROM_MOMENTS[self.measure](self.moments)
