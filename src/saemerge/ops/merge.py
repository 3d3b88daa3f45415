"""Baseline merges of whole checkpoints (SAE-SPEC §7), streamed tensor by tensor.

Methods and their parameters come from the one table in :mod:`saemerge.core.baselines`;
this module only streams tensors through them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from saemerge.checkpoint import DEFAULT_MAX_SHARD_BYTES, CheckpointWriter
from saemerge.core import baselines
from saemerge.core.hashing import TensorHasher
from saemerge.errors import SaeMergeError
from saemerge.ops.common import open_compatible, progress, resolve_device, to_device

log = logging.getLogger(__name__)


def _rankmean_block_weights(readers, base_reader, device) -> dict[int, list[float]]:
    """First pass of RankMean: Σ|τ_k| per decoder block per expert, turned into λ per block."""
    deltas: dict[int, list[float]] = defaultdict(lambda: [0.0] * len(readers))
    for name in progress(readers[0].names, "rankmean pass 1"):
        block = baselines.block_index(name)
        if block is None:
            continue
        b = to_device(base_reader.get(name), device)
        for k, r in enumerate(readers):
            deltas[block][k] += baselines.rankmean_block_delta(b, to_device(r.get(name), device))
    return baselines.rankmean_weights(dict(deltas))


def resolve_params(spec: baselines.MethodSpec, given: Mapping[str, object]) -> dict[str, object]:
    """The method's parameters: its defaults, overridden by the ones given (None = not given).

    A parameter the method does not take is an error rather than silently ignored.
    """
    params = dict(spec.params)
    for key, value in given.items():
        if value is None:
            continue
        if key not in params:
            flag = "--" + key.replace("_", "-")
            raise SaeMergeError(f"{flag} does not apply to --method {spec.name} (it takes: {', '.join(params) or 'nothing'})")
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
    **given: object,
) -> dict:
    """Merge `models` with a baseline `method` and write the result to `dst`.

    Args:
        method: a name in :data:`saemerge.core.baselines.MERGE_METHODS` other than ``sae``
            (SAE pairs two parents: :func:`saemerge.ops.sae.sae_merge_checkpoints`).
        models: checkpoint directories (same architecture, names, shapes, dtypes).
        base: the model the experts were fine-tuned from (every method but linear needs it).
        seed: DARE's seed; each tensor's drop is seeded by (seed, tensor name).
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
    dev = resolve_device(device)
    readers, base_reader = open_compatible(models, base if spec.needs_base else None)
    block_weights = _rankmean_block_weights(readers, base_reader, dev) if spec.per_block_weights else None
    hasher = TensorHasher()
    log.info("merging %d models with %s %s", len(readers), method, params)
    with CheckpointWriter(dst, readers[0].infos, side_files_from=readers[0].path, max_shard_bytes=max_shard_bytes) as out:
        for name in progress(readers[0].names, method):
            xs = [to_device(r.get(name), dev) for r in readers]
            kwargs = dict(params, name=name)
            if spec.needs_generator:
                kwargs["generator"] = baselines.tensor_generator(seed, name)
            if block_weights is not None:
                kwargs["weights"] = baselines.rankmean_tensor_weights(name, block_weights, len(readers))
            if spec.needs_base:
                y = spec.fn(to_device(base_reader.get(name), dev), xs, **kwargs)
            else:
                y = spec.fn(xs, **kwargs)
            y = y.cpu()
            hasher.update(name, y)
            out.write(name, y)
            del xs, y, kwargs  # free before the next (possibly large) tensor is read
    if spec.needs_generator:
        params["seed"] = seed
    return {"content_hash": hasher.hexdigest(), "method": method, "params": params}
