"""Baseline merges of one large tensor in row blocks, bit-identical to the whole-tensor methods.

:func:`merge_blocks` yields the merged tensor block by block for every method of
:data:`BLOCKWISE`, computing exactly what :mod:`saemerge.core.baselines` computes on the whole
tensor (see :mod:`saemerge.core.blocks` for why each step is exact):

* ``linear``, ``task_arithmetic``, ``rankmean``: elementwise, so the method runs on each block;
* ``ties``: each task vector's trim is a per-tensor top-k, selected over its blocks first
  (:func:`~saemerge.core.prune.select_cut`, two passes), then applied block by block; sign
  election and disjoint mean are elementwise;
* ``dare_linear``/``dare_ties``: the whole-tensor method draws expert 0's uniforms, then expert
  1's, … from one generator. Here each expert gets its own generator, set to the state the
  shared one has when that expert's draws begin (found by drawing through the earlier experts
  once), and draws its blocks in row order: the same numbers for the same entries.

Memory: a handful of block-sized float32 temporaries per expert, whatever the tensor size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from saemerge.checkpoint import CheckpointReader
from saemerge.core import baselines
from saemerge.core.prune import GlobalCutState, apply_global_cut, select_cut

# Methods whose blockwise form is proven identical; any other one is merged whole.
BLOCKWISE = frozenset({"linear", "task_arithmetic", "rankmean", "ties", "dare_linear", "dare_ties"})


class BlockSource:
    """Row blocks of one tensor in every expert and in the base."""

    def __init__(
        self,
        readers: Sequence[CheckpointReader],
        base_reader: CheckpointReader | None,
        name: str,
        spans: list[tuple[int, int]],
        device: torch.device,
    ):
        self.readers, self.base_reader, self.name, self.spans, self.device = readers, base_reader, name, spans, device
        info = readers[0].info(name)
        self.numel, self.dtype = info.numel, info.dtype
        self.block_numel = max(b - a for a, b in spans) * info.row_numel

    def expert(self, k: int, span: tuple[int, int]) -> torch.Tensor:
        return self.readers[k].get_rows(self.name, *span).to(self.device)

    def experts(self, span: tuple[int, int]) -> list[torch.Tensor]:
        return [self.expert(k, span) for k in range(len(self.readers))]

    def base(self, span: tuple[int, int]) -> torch.Tensor:
        assert self.base_reader is not None, "methods with a base are opened with one"
        return self.base_reader.get_rows(self.name, *span).to(self.device)


def merge_blocks(
    spec: baselines.MethodSpec, src: BlockSource, kwargs: dict, seed: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(row_start, merged block)`` in row order for one tensor; ``kwargs`` as for ``spec.fn``."""
    method, fn = spec.name, spec.fn
    assert fn is not None, "sae is not a one-shot merge"
    if method == "linear":
        for span in src.spans:
            yield span[0], fn(src.experts(span), **kwargs)
    elif method in ("task_arithmetic", "rankmean"):
        for span in src.spans:
            yield span[0], fn(src.base(span), src.experts(span), **kwargs)
    elif method in ("ties", "dare_linear", "dare_ties"):
        yield from _ties_dare_blocks(method, src, kwargs, seed)
    else:
        raise ValueError(f"method {method} has no blockwise form")


def _generator_states(seed: int, name: str, numel: int, n_experts: int, chunk: int) -> list[torch.Tensor]:
    """State of ``tensor_generator(seed, name)`` where each expert's draws begin in ``dare``.

    ``dare`` draws ``numel`` float32 uniforms per expert in expert order; uniform draws are
    serial, one per entry, so drawing the same count in pieces leaves the same state.
    """
    gen = baselines.tensor_generator(seed, name)
    states = []
    for k in range(n_experts):
        states.append(gen.get_state())
        if k + 1 < n_experts:
            for start in range(0, numel, chunk):
                torch.rand((min(chunk, numel - start),), generator=gen, dtype=torch.float32)
    return states


def _ties_dare_blocks(method: str, src: BlockSource, kwargs: dict, seed: int) -> Iterator[tuple[int, torch.Tensor]]:
    n_experts = len(src.readers)
    weights = kwargs.get("weights")
    w = [1.0] * n_experts if weights is None else [float(x) for x in weights]
    alpha = kwargs.get("alpha", 1.0)
    combine = "linear" if method == "dare_linear" else "ties"
    drop_p = float(kwargs["drop_p"]) if method != "ties" else None
    states = None
    if drop_p is not None:
        states = _generator_states(seed, src.name, src.numel, n_experts, src.block_numel)

    def generator(e: int) -> torch.Generator | None:
        """A fresh generator at expert e's first draw (None without DARE)."""
        if states is None:
            return None
        g = torch.Generator(device="cpu")
        g.set_state(states[e])
        return g

    def tau(e: int, span, f0: torch.Tensor, gen) -> torch.Tensor:
        """Expert e's task-vector block (as ``_deltas``), dropped and rescaled for DARE (as ``dare``)."""
        d = src.expert(e, span).to(dtype=torch.float32) - f0
        return baselines.dare_drop(d, drop_p, gen) if gen is not None and drop_p is not None else d

    def stream(e: int) -> Callable[[], Iterator[torch.Tensor]]:
        def blocks() -> Iterator[torch.Tensor]:
            gen = generator(e)
            for span in src.spans:
                yield tau(e, span, src.base(span).to(torch.float32), gen)

        return blocks

    # TIES trim (and dare_ties' optional one): each expert's exact per-tensor top-k, over its blocks.
    cuts: list = [None] * n_experts
    if combine == "ties":
        k = baselines._density_keep(src.numel, kwargs.get("density", 1.0), src.name)
        if k < src.numel:
            cuts = [select_cut(stream(e), lambda n: k) for e in range(n_experts)]
    cut_states = [GlobalCutState() for _ in range(n_experts)]
    gens = [generator(e) for e in range(n_experts)]
    for span in src.spans:
        base = src.base(span)
        f0 = base.to(torch.float32)
        ds = [tau(e, span, f0, gens[e]) for e in range(n_experts)]
        if combine == "ties":
            ds = [
                d if cut is None else d.masked_fill_(~apply_global_cut(d, cut, st), 0.0)  # d is ours
                for d, cut, st in zip(ds, cuts, cut_states)
            ]
            merged = baselines.ties_combine(ds, w, 1.0, name=src.name)  # density 1: trimmed above
        else:
            merged = torch.zeros_like(ds[0])
            for wi, d in zip(w, ds):
                merged += wi * d
        del ds
        yield span[0], (base.to(torch.float32) + alpha * merged).to(src.dtype)
