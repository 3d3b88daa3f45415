"""PSO-Merging on whole checkpoints (SAE-SPEC §7), streamed tensor by tensor (large ones in row blocks).

Two operations: :func:`init_particle_checkpoint` writes a particle's starting position (a
checkpoint as it is, or DARE of its task vector), :func:`pso_move_checkpoint` one step of a
particle (new position in the model's dtype, new velocity in float32). Both are elementwise,
so a tensor streamed in row blocks gives the bytes it gives whole; DARE draws its blocks in
row order from one generator per tensor, which is the whole tensor's draw.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from saemerge.checkpoint import DEFAULT_MAX_SHARD_BYTES, CheckpointReader, CheckpointWriter, TensorInfo
from saemerge.core.baselines import dare_drop, tensor_generator
from saemerge.core.blocks import BlockSparsity
from saemerge.core.hashing import TensorHasher
from saemerge.core.prune import is_prunable
from saemerge.core.pso import pso_step
from saemerge.devices import torch_device
from saemerge.errors import SaeMergeError
from saemerge.ops.common import open_compatible, progress, read_span, resolve_block_elems, tensor_spans

log = logging.getLogger(__name__)


class _Sink:
    """One output checkpoint and its content hash, fed a tensor whole or in row blocks."""

    def __init__(self, writer: CheckpointWriter):
        self.writer, self.hasher = writer, TensorHasher()
        self.name, self.whole = "", True

    def begin(self, info: TensorInfo, whole: bool) -> None:
        self.name, self.whole = info.name, whole
        if not whole:
            self.hasher.begin(info.name, info.dtype, info.shape)

    def put(self, row_start: int, y: torch.Tensor) -> None:
        y = y.cpu()
        if self.whole:
            self.hasher.update(self.name, y)
            self.writer.write(self.name, y)
        else:
            self.hasher.feed(y)
            self.writer.write_block(self.name, row_start, y)

    def end(self) -> None:
        if not self.whole:
            self.hasher.end()


class _Delta:
    """ρ (zero_count over prunable tensors, delta space) of an output, fed as it is written."""

    def __init__(self):
        self.measured = BlockSparsity("zero_count")
        self.on = False

    def begin(self, info: TensorInfo) -> None:
        self.on = is_prunable(info.name, info.shape)
        if self.on:
            self.measured.begin()

    def add(self, y: torch.Tensor, b: torch.Tensor) -> None:
        if self.on:
            self.measured.add(y.float() - b.float())

    def end(self) -> None:
        if self.on:
            self.measured.end()


def init_particle_checkpoint(
    src: str | Path,
    dst: str | Path,
    *,
    base: str | Path,
    drop_p: float = 0.0,
    seed: int = 0,
    device: str | None = "cpu",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    block_elems: int | None = None,
) -> dict:
    """A particle's starting position: `src` itself, or ``θ_0 + DARE(src − θ_0)``.

    DARE (``drop_p > 0``) drops each entry of the task vector of every floating-point tensor
    (embeddings included, as DARE does) with probability ``drop_p`` and rescales survivors by
    ``1/(1−p)``; the mask of a tensor is drawn from ``tensor_generator(seed, name)``, so the
    result equals the ``dare_linear`` baseline of `src` alone with that seed.

    Returns:
        {"content_hash", "sparsity" (zero_count of the task vector over prunable tensors)}.
    """
    p = float(drop_p)
    if not 0.0 <= p < 1.0:
        raise SaeMergeError(f"pso_drop_p {drop_p!r}: expected a value in [0, 1)")
    dev = torch_device(device)
    block = resolve_block_elems(block_elems)
    (reader,), base_reader = open_compatible([src], base)
    assert base_reader is not None
    rho = _Delta()
    log.info("particle from %s (DARE p=%g, seed %d)", src, p, seed)
    with CheckpointWriter(dst, reader.infos, side_files_from=reader.path, max_shard_bytes=max_shard_bytes) as out:
        sink = _Sink(out)
        for name in progress(reader.names, "particle"):
            info, spans = reader.info(name), tensor_spans(reader.info(name), block)
            whole = len(spans) == 1
            gen = tensor_generator(seed, name) if p > 0 and info.dtype.is_floating_point else None
            sink.begin(info, whole)
            rho.begin(info)
            for span in spans:
                x = read_span(reader, name, span, whole, dev)
                b = read_span(base_reader, name, span, whole, dev)
                if gen is not None:
                    f0 = b.to(torch.float32)
                    x = (f0 + dare_drop(x.to(torch.float32) - f0, p, gen)).to(info.dtype)
                rho.add(x, b)
                sink.put(span[0], x)
            rho.end()
            sink.end()
    return {"content_hash": sink.hasher.hexdigest(), "sparsity": rho.measured.value()}


def _velocity_reader(path: str | Path, like: CheckpointReader) -> CheckpointReader:
    """A velocity checkpoint: float32, the position's tensor names and shapes."""
    reader = CheckpointReader(path)
    for name in like.names:
        info = reader.info(name)  # names the missing tensor
        if info.shape != like.info(name).shape or info.dtype != torch.float32:
            raise SaeMergeError(
                f"{path}: velocity of {name} is {list(info.shape)} {info.dtype}, expected "
                f"{list(like.info(name).shape)} float32"
            )
    return reader


def pso_move_checkpoint(
    x: str | Path,
    pbest: str | Path,
    gbest: str | Path,
    dst: str | Path,
    velocity_dst: str | Path,
    *,
    base: str | Path,
    velocity: str | Path | None = None,
    r1: float,
    r2: float,
    w: float = 0.2,
    c1: float = 2.0,
    c2: float = 2.0,
    device: str | None = "cpu",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    block_elems: int | None = None,
) -> dict:
    """Move one particle: ``v' = w·v + c1·r1·(pbest − x) + c2·r2·(gbest − x)``, ``x' = x + v'``.

    Args:
        x, pbest, gbest: the particle's position, its personal best, the swarm's best.
        dst: where the new position goes (the position's dtypes and side files).
        velocity_dst: where the new velocity goes (float32 tensors of the same names and shapes).
        base: the base model; only the new position's ρ is measured against it.
        velocity: the current velocity checkpoint; None for ``v0 = 0``.

    Returns:
        {"content_hash" (of the position), "velocity_hash", "sparsity" (ρ of the position)}.
    """
    dev = torch_device(device)
    block = resolve_block_elems(block_elems)
    (xr, pr, gr), base_reader = open_compatible([x, pbest, gbest], base)
    vr = _velocity_reader(velocity, xr) if velocity is not None else None
    v_layout = {i.name: TensorInfo(i.name, i.shape, torch.float32, "") for i in xr.infos}
    rho = _Delta()
    with (
        CheckpointWriter(dst, xr.infos, side_files_from=xr.path, max_shard_bytes=max_shard_bytes) as out,
        CheckpointWriter(velocity_dst, list(v_layout.values()), max_shard_bytes=max_shard_bytes) as v_out,
    ):
        pos, vel = _Sink(out), _Sink(v_out)
        for name in progress(xr.names, "pso move"):
            info, spans = xr.info(name), tensor_spans(xr.info(name), block)
            whole = len(spans) == 1
            pos.begin(info, whole)
            vel.begin(v_layout[name], whole)
            rho.begin(info)
            for span, (x1, v1, b) in zip(
                spans, _moved(xr, pr, gr, vr, base_reader, name, spans, dev, r1, r2, w, c1, c2)
            ):
                rho.add(x1, b)
                pos.put(span[0], x1)
                vel.put(span[0], v1)
            rho.end()
            pos.end()
            vel.end()
    return {
        "content_hash": pos.hasher.hexdigest(),
        "velocity_hash": vel.hasher.hexdigest(),
        "sparsity": rho.measured.value(),
    }


def _moved(xr, pr, gr, vr, base_reader, name, spans, dev, r1, r2, w, c1, c2) -> Iterator[tuple]:
    """(new position block, new velocity block, base block) for each row block of one tensor."""
    whole = len(spans) == 1
    for span in spans:
        x = read_span(xr, name, span, whole, dev)
        b = read_span(base_reader, name, span, whole, dev)
        if not x.dtype.is_floating_point:  # integer buffers do not move
            yield x, torch.zeros(x.shape, dtype=torch.float32, device=dev), b
            continue
        v = read_span(vr, name, span, whole, dev) if vr is not None else None
        p, g = read_span(pr, name, span, whole, dev), read_span(gr, name, span, whole, dev)
        x1, v1 = pso_step(x, v, p, g, r1, r2, w, c1, c2)
        yield x1, v1, b
