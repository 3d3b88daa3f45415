"""Steps of the M2N2 search (SAE-SPEC §7, M2N2): mate selection, crossover, archive update.

One generation: the archive is re-scored on the generation's sample (the shared evaluate
step), :func:`select_parents` draws ``m2n2_children`` matings from the per-example score
matrix, :func:`crossover` makes each child (content-addressed, in a ParallelFor), the
children are scored on the same sample, and :func:`archive_update` lets them compete one at a
time, in child order, for the archive by resource-shared fitness.

The per-example matrix ``S`` comes from the run's score cache (:class:`ScoreCache`): each
model's rows on exactly the sample's examples, in sample order. The records' ``fitness``
stays SAE-SPEC's ``score + γ·ρ`` (the report, ``inspect`` and the final choice of the best
model read it the same way for every search); the resource-shared fitness drives selection
and replacement only, and is written into each child's ``reason`` and the metrics.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from contextlib import ExitStack

import numpy as np

from saemerge import storage
from saemerge.core.m2n2 import compete, draw_mating, shared_fitness
from saemerge.run.layout import RunLayout, gen_name
from saemerge.run.tables import write_json
from saemerge.steps.evaluation import read_sample
from saemerge.steps.records import find_recipe, input_identity, make_record, publish_model
from saemerge.steps.score_cache import ScoreCache

log = logging.getLogger(__name__)


def _by_id(records: Sequence[Mapping]) -> list[dict]:
    return sorted((dict(r) for r in records), key=lambda r: r["id"])


def score_matrix(run: str, records: Sequence[Mapping], sample_uri: str) -> np.ndarray:
    """``S``: one row per record, one column per example of the sample (1.0 = solved).

    Every record must already be scored on the sample (the evaluate step does that).
    """
    with storage.local_input(sample_uri) as sample_dir:
        docs = read_sample(sample_dir)
    cache = ScoreCache.for_run(RunLayout(run))
    rows = [[float(r.correct) for r in cache.on(rec["content_hash"], docs).per_example] for rec in records]
    return np.array(rows, dtype=np.float64).reshape(len(records), -1)


def mating_seed(seed: int, generation: int) -> int:
    """The generation's RNG seed, from the run seed and the generation only."""
    return int.from_bytes(hashlib.sha256(f"m2n2:{int(seed)}:{int(generation)}".encode()).digest()[:8], "big")


def select_parents(
    run: str, generation: int, archive: Sequence[Mapping], sample_uri: str, children: int, alpha: float, seed: int
) -> list[dict]:
    """Draw the generation's matings: A by resource-shared fitness, B by attraction to A, t, split.

    Returns:
        One self-contained crossover order per child: {"generation", "index", "a": record,
        "b": record, "t", "split_u", "p_a", "p_b", "archive_hashes"}.
    """
    members = _by_id(archive)
    scores = score_matrix(run, members, sample_uri)
    fit = shared_fitness(scores, alpha)
    rng = np.random.default_rng(mating_seed(seed, generation))
    hashes = sorted(r["content_hash"] for r in members)
    orders = []
    for index in range(int(children)):
        m = draw_mating(scores, rng, alpha)
        a, b = members[m.a], members[m.b]
        orders.append(
            {
                "generation": generation,
                "index": index,
                "a": a,
                "b": b,
                "t": m.t,
                "split_u": m.split_u,
                "p_a": m.p_a,
                "p_b": m.p_b,
                "archive_hashes": hashes,
            }
        )
        log.info(
            "generation %d child %d: %s (f %.3f, p %.3f) x %s (p %.3f), t = %.3f, split at %.3f",
            generation,
            index,
            a["id"],
            fit[m.a],
            m.p_a,
            b["id"],
            m.p_b,
            m.t,
            m.split_u,
        )
    return orders


def crossover(run: str, order: Mapping, *, base_uri: str, measure: str = "zero_count", device: str = "cpu") -> dict:
    """One M2N2 child (:func:`saemerge.ops.m2n2.m2n2_crossover_checkpoints`); content-addressed.

    A child identical to an archive member is discarded without evaluation (as in SAE-SPEC §3).
    """
    from saemerge.devices import merge_device
    from saemerge.ops.m2n2 import m2n2_crossover_checkpoints  # torch: only this step needs it

    device = merge_device(device)  # CUDA checked before anything is read (a GPU step fails at once)
    a, b = order["a"], order["b"]
    t, split_u, generation = float(order["t"]), float(order["split_u"]), int(order["generation"])
    key, record = find_recipe(
        run,
        op="m2n2",
        a=a["content_hash"],
        b=b["content_hash"],
        t=t,
        split_u=split_u,
        base=input_identity(base_uri),
        measure=measure,
    )
    if record is None:

        def compute(out):
            with ExitStack() as stack:
                pa_ = stack.enter_context(storage.local_input(a["uri"]))
                pb_ = stack.enter_context(storage.local_input(b["uri"]))
                base = stack.enter_context(storage.local_input(base_uri))
                return m2n2_crossover_checkpoints(
                    pa_, pb_, out, t=t, split_u=split_u, base=base, measure=measure, device=device
                )

        record = publish_model(
            run,
            key,
            compute,
            lambda s: make_record(
                s["content_hash"],
                s["uri"],
                parents=[a["id"], b["id"]],
                born=generation,
                generation=generation,
                origin=f"m2n2 t={t:.3f} split {s['split']}/{s['n_entries']} (in {s['split_tensor']})",
                sparsity=s["rho"],
                s_t=0.0,
            ),
        )
    record = dict(record, born=generation, generation=generation, index=int(order["index"]))
    if record["content_hash"] in set(order.get("archive_hashes", ())):
        record.update(status="discarded", reason="identical to an archive member; not evaluated")
        log.info("child %s of %s x %s is identical to an archive member: discarded", record["id"], a["id"], b["id"])
    return record


def archive_update(
    run: str,
    generation: int,
    archive: Sequence[Mapping],
    children: Sequence[Mapping],
    sample_uri: str,
    archive_size: int,
    alpha: float,
) -> tuple[list[dict], dict]:
    """The next archive: each child, in child order, competes by resource-shared fitness.

    While the archive holds fewer than `archive_size` members a child joins without competing;
    otherwise it replaces the member with the lowest resource-shared fitness (over the archive
    plus the child) unless its own is strictly lower (the authors' argmin over archive + child:
    a tie lets the child in). Writes ``gen-XX/offspring.parquet``,
    ``population.parquet`` and ``metrics.json`` (:data:`saemerge.run.tables.GEN_METRICS` keys,
    ``best.<task>`` and the resource-shared fitness of the new archive).

    Returns:
        (the new archive as records, the generation's summary for the UI).
    """
    layout = RunLayout(run)
    members = _by_id(archive)
    ordered = sorted((dict(c) for c in children), key=lambda c: (int(c.get("index", 0)), c["id"]))
    evaluated = [c for c in ordered if c.get("status") != "discarded"]
    discarded = [c for c in ordered if c.get("status") == "discarded"]
    scores = score_matrix(run, members + evaluated, sample_uri)
    row = {r["id"]: scores[i] for i, r in enumerate(members + evaluated)}
    for child in evaluated:
        if child["content_hash"] in {m["content_hash"] for m in members}:
            child.update(status="rejected", reason="identical to an archive member")
        elif len(members) < archive_size:
            members = _by_id([*members, child])
            child.update(status="accepted", reason="added: the archive had room")
        else:
            c = compete(np.array([row[m["id"]] for m in members]), row[child["id"]], alpha)
            worst = members[c.worst]["id"]
            if c.replaced is None:
                child.update(
                    status="rejected",
                    reason=f"shared fitness {c.child_fitness:.4f} below "
                    f"{c.worst_fitness:.4f} of {worst}, the weakest member",
                )
            else:
                members = _by_id([*members[: c.replaced], child, *members[c.replaced + 1 :]])
                child.update(
                    status="accepted",
                    reason=f"replaced {worst}: shared fitness {c.child_fitness:.4f} "
                    + (
                        f"> {c.worst_fitness:.4f}"
                        if c.child_fitness > c.worst_fitness
                        else f"ties {c.worst_fitness:.4f} (a tie lets the child in)"
                    ),
                )
                for sibling in evaluated:  # an earlier child of this generation can lose its place again
                    if sibling["id"] == worst:
                        sibling["reason"] += f"; later replaced by {child['id']}"
        log.info("generation %d: child %s %s (%s)", generation, child["id"], child["status"], child["reason"])
    new_archive = [dict(r, generation=generation, status="member") for r in members]
    where = gen_name(generation)
    layout.write_population(where, evaluated + discarded, name="offspring")
    layout.write_population(where, new_archive)
    shared = shared_fitness(np.array([row[r["id"]] for r in new_archive]), alpha)
    fit = [r["fitness"] for r in new_archive]
    best = max(new_archive, key=lambda r: (r["fitness"], r["id"]))
    summary = {
        "generation": generation,
        "s_t": 0.0,  # M2N2 has no sparsity schedule
        "best_fitness": max(fit),
        "mean_fitness": sum(fit) / len(fit),
        "best_score": best["score"],
        "mean_sparsity": sum(r["sparsity"] for r in new_archive) / len(new_archive),
        "accepted": sum(c["status"] == "accepted" for c in evaluated),
        "offspring": len(ordered),
        "best_shared_fitness": float(shared.max()),
        "mean_shared_fitness": float(shared.mean()),
        **{f"best.{task}": acc for task, acc in best["scores"].items()},
    }
    write_json(layout.metrics(where), summary)
    log.info(
        "generation %s: best fitness %.4f, %d/%d children accepted",
        where,
        summary["best_fitness"],
        summary["accepted"],
        len(ordered),
    )
    return new_archive, summary
