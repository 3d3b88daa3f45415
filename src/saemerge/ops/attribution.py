"""Attribution of a checkpoint to the experts (:mod:`saemerge.core.attribution`), streamed.

One pass over the prunable tensors (SAE-SPEC §1): each tensor of the model, the base and every
expert is read once, its task vectors go into the k×k Gram system and the top-10 % counts, and
it is dropped before the next. A tensor is read whole (the top-10 % of an expert's tensor needs
all of it): peak memory is (k + 2) tensors of one name in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from saemerge.core.attribution import TOP_FRACTION, AttributionAccumulator
from saemerge.core.prune import is_prunable
from saemerge.errors import SaeMergeError
from saemerge.ops.common import open_compatible, progress


def attribute_checkpoint(
    model: str | Path,
    base: str | Path,
    experts: Sequence[str | Path],
    *,
    names: Sequence[str] | None = None,
    top_fraction: float = TOP_FRACTION,
) -> dict:
    """The attribution of `model` to `experts` against `base`, over the prunable tensors.

    Args:
        model, base, experts: checkpoint directories with the same tensor names, shapes and dtypes.
        names: how to name the experts in the result (default: their directory names).
        top_fraction: the top share of each expert tensor's entries by magnitude (default 0.1).

    Returns:
        {"coefficients": {expert: c}, "residual_share", "top_kept": {expert: fraction}, "norm",
         "expert_norms": {expert: norm}, "tensors"} (:class:`~saemerge.core.attribution.Attribution`).
    """
    if not experts:
        raise SaeMergeError("attribute: at least one expert is needed")
    if base is None:
        raise SaeMergeError("attribute: the base model is needed (task vectors are measured against it)")
    readers, base_reader = open_compatible([model, *experts], base)
    assert base_reader is not None
    m_reader, e_readers = readers[0], readers[1:]
    labels = list(names) if names is not None else [Path(str(e)).name for e in experts]
    if len(labels) != len(experts) or len(set(labels)) != len(labels):
        raise SaeMergeError(f"attribute: expert names {labels} must be one per expert and distinct")
    acc = AttributionAccumulator(len(experts), top_fraction)
    for name in progress(m_reader.names, "attribution"):
        if not is_prunable(name, m_reader.info(name).shape):
            continue
        b = base_reader.get(name).to(torch.float64)
        m = m_reader.get(name).to(torch.float64) - b
        xs = [r.get(name).to(torch.float64) - b for r in e_readers]
        acc.add(m, xs, name)
        del b, m, xs
    return acc.result().to_dict(labels)
