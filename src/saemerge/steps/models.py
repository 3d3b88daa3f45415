"""Steps that make models: initial sparse variants (prune) and SAE offspring (pair and merge)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

from saemerge import storage
from saemerge.devices import merge_device
from saemerge.ops import checkpoint_sparsity, prune_checkpoint, sae_merge_checkpoints
from saemerge.steps.records import find_recipe, input_identity, make_record, publish_model

log = logging.getLogger(__name__)


def prune_variant(
    run: str, variant: Mapping, *, base_uri: str, measure: str = "zero_count", device: str = "cpu"
) -> dict:
    """Prune one expert (or the base) to the variant's sparsity; content-addressed.

    Args:
        variant: {"source": URI, "name": str, "sparsity": float, "granularity": "tensor" or
            "global"} from :func:`init_population` (granularity "tensor" when absent).
        measure: the sparsity measure of the run; the record's ρ (which enters fitness) uses it.
    """
    device = merge_device(device)  # CUDA checked before anything is read (a GPU step fails at once)
    sparsity = float(variant["sparsity"])
    granularity = str(variant.get("granularity", "tensor"))
    origin = f"{variant['name']}@{sparsity:g}"
    key, record = find_recipe(
        run,
        op="prune",
        source=input_identity(variant["source"]),
        base=input_identity(base_uri),
        sparsity=sparsity,
        granularity=granularity,
        measure=measure,
    )
    if record is not None:
        return record

    def compute(out):
        with ExitStack() as stack:
            src = stack.enter_context(storage.local_input(variant["source"]))
            base = stack.enter_context(storage.local_input(base_uri))
            summary = prune_checkpoint(src, out, sparsity, base=base, granularity=granularity, device=device)
            if measure != "zero_count":  # prune reports the zero fraction
                summary["sparsity"] = checkpoint_sparsity(out, base=base, measure=measure)["global"]
            return summary

    return publish_model(
        run,
        key,
        compute,
        lambda s: make_record(
            s["content_hash"], s["uri"], origin=origin, sparsity=s["sparsity"], s_t=sparsity, born=-1
        ),
    )


def pair_and_merge(
    run: str,
    pair: Mapping,
    *,
    base_uri: str,
    scoring: str = "global",
    beta: float = 1.0,
    attraction: str = "linear",
    measure: str = "zero_count",
    granularity: str = "tensor",
    device: str = "cpu",
) -> dict:
    """One SAE offspring from a pair (SAE-SPEC §3); discarded when it equals an archive member.

    Args:
        pair: {"generation", "index", "s_t", "a": record, "b": record, "archive_hashes": [...]}
            from :func:`saemerge.steps.population.pair_parents`; the parents' "score" is their
            score on this generation's optimisation set.
    """
    device = merge_device(device)  # CUDA checked before anything is read (a GPU step fails at once)
    a, b = pair["a"], pair["b"]
    s_t, generation = float(pair["s_t"]), int(pair["generation"])
    params: dict[str, Any] = dict(
        scoring=scoring, beta=float(beta), attraction=attraction, measure=measure, granularity=granularity
    )
    key, record = find_recipe(
        run,
        op="sae",
        a=a["content_hash"],
        b=b["content_hash"],
        score_a=float(a["score"]),
        score_b=float(b["score"]),
        base=input_identity(base_uri),
        sparsity=s_t,
        **params,
    )
    if record is None:

        def compute(out):
            with ExitStack() as stack:
                pa_ = stack.enter_context(storage.local_input(a["uri"]))
                pb_ = stack.enter_context(storage.local_input(b["uri"]))
                base = stack.enter_context(storage.local_input(base_uri))
                return sae_merge_checkpoints(
                    pa_,
                    pb_,
                    float(a["score"]),
                    float(b["score"]),
                    out,
                    base=base,
                    sparsity=s_t,
                    device=device,
                    **params,
                )

        record = publish_model(
            run,
            key,
            compute,
            lambda s: make_record(
                s["content_hash"],
                s["uri"],
                parents=[a["id"], b["id"]],
                origin="sae",
                born=generation,
                generation=generation,
                sparsity=s["rho"],
                s_t=s_t,
                lambda_mean=s["lambda_mean"],
                lambda_min=s["lambda_min"],
                lambda_max=s["lambda_max"],
            ),
        )
    record = dict(record, born=generation, generation=generation)
    if record["content_hash"] in set(pair.get("archive_hashes", ())):
        record.update(status="discarded", reason="identical to an archive member; not evaluated")
        log.info("offspring %s of %s x %s is identical to an archive member: discarded", record["id"], a["id"], b["id"])
    return record


def pair_and_merge_with_run_settings(run: str, pair: Mapping) -> dict:
    """What SAE's merge step does: :func:`pair_and_merge` with the run's base and merge settings (run.json)."""
    from saemerge.steps.settings import run_config

    c = run_config(run)
    return pair_and_merge(
        run,
        pair,
        base_uri=c.base_uri,
        scoring=c.scoring,
        beta=c.beta,
        attraction=c.attraction,
        measure=c.measure,
        granularity=c.granularity,
        device=c.merge_device,
    )


merge_pair = pair_and_merge_with_run_settings  # the old name, kept for one release
