"""Baseline merges of whole checkpoints (SAE-SPEC §7), streamed tensor by tensor.

Methods and their parameters come from the one table in :mod:`saemerge.core.baselines`;
this module only streams tensors through them: whole up to ``block_elems`` entries, in row
blocks above (:mod:`saemerge.ops.blockmerge`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saemerge.checkpoint import DEFAULT_MAX_SHARD_BYTES, CheckpointWriter
from saemerge.core import baselines
from saemerge.core.hashing import TensorHasher
from saemerge.devices import torch_device
from saemerge.errors import SaeMergeError
from saemerge.ops.blockmerge import BLOCKWISE, BlockSource, merge_blocks
from saemerge.ops.common import (
    emit_tensor,
    open_compatible,
    progress,
    read_span,
    resolve_block_elems,
    tensor_spans,
    to_device,
)

log = logging.getLogger(__name__)


def _rankmean_block_weights(readers, base_reader, device, spans) -> dict[int, list[float]]:
    """First pass of RankMean: Σ|τ_k| per decoder block per expert, turned into λ per block.

    A tensor streamed in row blocks adds its blocks' sums (float64): equal to the whole
    tensor's sum up to float64 rounding, which can only matter if two decoder blocks' sizes
    agree to ~1e-12 (the weights depend on their ranks only).
    """
    deltas: dict[int, list[float]] = defaultdict(lambda: [0.0] * len(readers))
    for name in progress(readers[0].names, "rankmean pass 1"):
        block = baselines.block_index(name)
        if block is None:
            continue
        whole = len(spans[name]) == 1
        for span in spans[name]:
            b = read_span(base_reader, name, span, whole, device)
            for k, r in enumerate(readers):
                deltas[block][k] += baselines.rankmean_block_delta(b, read_span(r, name, span, whole, device))
    return baselines.rankmean_weights(dict(deltas))


def resolve_params(spec: baselines.MethodSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """The method's parameters: its defaults, overridden by the ones given (None = not given).

    A parameter the method does not take is an error rather than silently ignored.
    """
    params = dict(spec.params)
    for key, value in given.items():
        if value is None:
            continue
        if key not in params:
            flag = "--" + key.replace("_", "-")
            raise SaeMergeError(
                f"{flag} does not apply to --method {spec.name} (it takes: {', '.join(params) or 'nothing'})"
            )
        params[key] = value
    return params


def merge_checkpoints(
    method: str,
    models: Sequence[str | Path],
    dst: str | Path,
    *,
    base: str | Path | None = None,
    seed: int = 0,
    device: str | None = "cpu",
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    block_elems: int | None = None,
    **given: object,
) -> dict:
    """Merge `models` with a baseline `method` and write the result to `dst`.

    Args:
        method: a name in :data:`saemerge.core.baselines.MERGE_METHODS` other than ``sae``
            (SAE pairs two parents: :func:`saemerge.ops.sae.sae_merge_checkpoints`).
        models: checkpoint directories (same architecture, names, shapes, dtypes).
        base: the model the experts were fine-tuned from (every method but linear needs it).
        seed: DARE's seed; each tensor's drop is seeded by (seed, tensor name).
        block_elems: tensors above this many entries are merged in row blocks of at most this
            size (default :data:`~saemerge.core.blocks.DEFAULT_BLOCK_ELEMS`); the output is
            bit-identical whatever the size (see :mod:`saemerge.ops.blockmerge`).
        given: the method's parameters (weights, alpha, density, drop_p, normalize); None or
            absent means the method's default.

    Returns:
        {"content_hash", "method", "params"}.
    """
    spec = baselines.get_method(method)
    if spec.fn is None:
        raise SaeMergeError(f"--method {method} merges a pair of parents: give --models A B and --scores SA SB")
    if len(models) < 2:
        raise SaeMergeError(f"--models: {method} needs at least two models, got {len(models)}")
    params = resolve_params(spec, given)
    if params.get("weights") is not None and len(params["weights"]) != len(models):
        raise SaeMergeError(f"--weights: got {len(params['weights'])} weights for {len(models)} models")
    if "density" in params and not 0.0 < float(params["density"]) <= 1.0:
        raise SaeMergeError(f"--density {params['density']}: expected a value in (0, 1]")
    if "drop_p" in params and not 0.0 <= float(params["drop_p"]) < 1.0:
        raise SaeMergeError(f"--drop-p {params['drop_p']}: expected a value in [0, 1)")
    if spec.needs_base and base is None:
        raise SaeMergeError(f"--base is required by --method {method} (task vectors are taken from it)")
    dev = torch_device(device)
    block = resolve_block_elems(block_elems)
    readers, base_reader = open_compatible(models, base if spec.needs_base else None)
    spans = {i.name: tensor_spans(i, block) for i in readers[0].infos}
    block_weights = _rankmean_block_weights(readers, base_reader, dev, spans) if spec.per_block_weights else None
    hasher = TensorHasher()
    log.info("merging %d models with %s %s", len(readers), method, params)
    with CheckpointWriter(
        dst, readers[0].infos, side_files_from=readers[0].path, max_shard_bytes=max_shard_bytes
    ) as out:
        for name in progress(readers[0].names, method):
            kwargs = dict(params, name=name)
            if block_weights is not None:
                kwargs["weights"] = baselines.rankmean_tensor_weights(name, block_weights, len(readers))
            info = readers[0].info(name)
            if len(spans[name]) == 1 or method not in BLOCKWISE:
                emit_tensor(out, hasher, info, [(0, _whole(spec, name, readers, base_reader, dev, seed, kwargs))], True)
            else:
                src = BlockSource(readers, base_reader, name, spans[name], dev)
                emit_tensor(out, hasher, info, merge_blocks(spec, src, kwargs, seed), False)
    if spec.needs_generator:
        params["seed"] = seed
    return {"content_hash": hasher.hexdigest(), "method": method, "params": params}


def _whole(spec, name, readers, base_reader, dev, seed, kwargs):
    """The merged tensor computed whole (tensors up to one block, or methods not known to be blockwise)."""
    xs = [to_device(r.get(name), dev) for r in readers]
    if spec.needs_generator:
        kwargs = dict(kwargs, generator=baselines.tensor_generator(seed, name))
    if spec.needs_base:
        return spec.fn(to_device(base_reader.get(name), dev), xs, **kwargs)
    return spec.fn(xs, **kwargs)
