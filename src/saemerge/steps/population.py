"""Steps on the population: the initial variants, pairing, and the archive update (SAE-SPEC §3, §4, §6)."""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from collections.abc import Mapping, Sequence

from saemerge import __version__, commit, pipeline_images, runlog, storage
from saemerge.config import RunConfig, model_name
from saemerge.core.archive import initial_archive, random_pairs, update_archive
from saemerge.errors import SaeMergeError
from saemerge.preflight import check_merge_device, check_run_tasks
from saemerge.runlog import RunLayout, gen_name
from saemerge.steps.records import to_member

log = logging.getLogger(__name__)


def start_run(config: RunConfig) -> None:
    """Check the inputs and record the run (``run.json``); on a resume, check it is the same run.

    Every search's first step calls this. Everything deterministic is checked before any heavy
    work (:func:`saemerge.preflight.check_inputs`: headers and line counts only): an error
    here can never go away, and would otherwise fail every retried step after it. A run id
    already holding a run.json must have been started with the same configuration (that is a
    resume); anything else is an error rather than a mixed run.
    """
    tasks = check_run_tasks(config)  # the task set, checked and recorded (saemerge.preflight)
    check_merge_device(config.merge_device)
    layout = RunLayout(config.run_uri)
    info = {
        **tasks,
        "config": config.to_json(),
        "experts": list(config.experts),
        "base": config.base_uri,
        "versions": {"saemerge": __version__, "commit": commit(), "python": platform.python_version()},
        "images": pipeline_images(),
    }
    if storage.exists(layout.run_json):
        previous = runlog.read_json(layout.run_json)
        if previous.get("config") != info["config"] or previous.get("experts") != info["experts"]:
            raise SaeMergeError(f"{layout.run_json}: this run was started with another configuration; use a new run id")
        log.info("resuming run %s", config.run_uri)
    else:
        runlog.write_json(layout.run_json, {**info, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def init_population(config: RunConfig) -> list[dict]:
    """Start the run (:func:`start_run`) and list the initial variants (SAE-SPEC §6.1).

    Each expert is expanded at sparsities {0, s_min, (s_min+s_max)/2, s_max}, pruned at the
    run's granularity (one threshold per tensor, or one over the model). The base, when
    `config.include_base`, is one variant: its task vector is zero, so pruning cannot change it.
    """
    start_run(config)
    levels = config.levels
    g = config.granularity
    variants = [
        {"source": uri, "name": f"expert:{model_name(uri)}", "sparsity": s, "granularity": g}
        for uri in config.experts
        for s in levels
    ]
    if config.include_base:
        variants.append({"source": config.base_uri, "name": "base", "sparsity": 0.0, "granularity": g})
    log.info(
        "initial population: %d variants of %d experts at sparsities %s", len(variants), len(config.experts), levels
    )
    return variants


def pair_parents(run: str, generation: int, archive: Sequence[Mapping], s_t: float, seed: int) -> list[dict]:
    """Seeded random pairs of the archive (SAE-SPEC §3), each a self-contained merge order."""
    members = [to_member(r) for r in archive]
    by_id = {r["id"]: dict(r) for r in archive}
    pair_seed = int.from_bytes(hashlib.sha256(f"pairs:{seed}:{generation}".encode()).digest()[:8], "big")
    pairs = random_pairs(members, pair_seed)
    hashes = sorted({r["content_hash"] for r in archive})
    log.info("generation %d: %d pairs from %d members at s_t = %.4g", generation, len(pairs), len(members), s_t)
    return [
        {"generation": generation, "index": i, "s_t": s_t, "a": by_id[x.id], "b": by_id[y.id], "archive_hashes": hashes}
        for i, (x, y) in enumerate(pairs)
    ]


def scheduled_sparsity(config: RunConfig, generation: int) -> float:
    """s_t of `generation` on the run's cyclic schedule (SAE-SPEC §5); 0.0 for the initial archive (-1)."""
    from saemerge.core.schedule import cyclic_schedule

    if generation < 0:
        return 0.0
    c = config
    return cyclic_schedule(steps=c.steps, s_min=c.s_min, s_max=c.s_max, t0=c.t0, t_mult=c.t_mult, reverse=c.reverse)[
        generation
    ]


def schedule_and_pair(run: str, generation: int, archive: Sequence[Mapping]) -> list[dict]:
    """What SAE's schedule step does: s_t of `generation` on the run's schedule, and the
    generation's pairs at s_t (:func:`pair_parents`) with the run's seed; each pair carries s_t.

    `archive` is the archive scored on this generation's sample: each pair carries its
    parents' records, whose scores the merge reads.
    """
    from saemerge.steps.settings import run_config

    config = run_config(run)
    return pair_parents(run, generation, archive, scheduled_sparsity(config, generation), config.seed)


def archive_update(
    run: str,
    generation: int,
    s_t: float,
    archive: Sequence[Mapping],
    offspring: Sequence[Mapping],
    archive_size: int,
    competition: str,
) -> tuple[list[dict], dict]:
    """The next archive, and the generation's records in the run (SAE-SPEC §4).

    Generation -1 selects the initial archive from the evaluated variants. Writes
    ``population.parquet`` (the archive after the update), ``offspring.parquet`` (every
    offspring with its outcome) and ``metrics.json`` under ``gen-XX/`` (``init/`` for -1).

    Returns:
        (the new archive as records, the generation's summary for the UI).
    """
    layout = RunLayout(run)
    where = gen_name(generation)
    evaluated = [dict(r) for r in offspring if r.get("status") != "discarded"]
    discarded = [dict(r) for r in offspring if r.get("status") == "discarded"]
    records = {r["id"]: dict(r) for r in [*archive, *evaluated]}
    if generation < 0:
        chosen = initial_archive([to_member(r) for r in evaluated], archive_size)
        kept = {m.id for m in chosen}
        for r in evaluated:
            r.update(
                status="accepted" if r["id"] in kept else "rejected",
                reason="among the best by fitness" if r["id"] in kept else "not among the best by fitness",
            )
        new_ids = [m.id for m in chosen]
    else:
        new_members, events = update_archive(
            [to_member(r) for r in archive], [to_member(r) for r in evaluated], archive_size, competition
        )
        outcome = {e.offspring: e for e in events}
        for r in evaluated:
            e = outcome[r["id"]]
            r.update(status="rejected" if e.outcome == "rejected" else "accepted", reason=e.reason)
        new_ids = [m.id for m in new_members]
    new_archive = [dict(records[i], generation=generation, status="member") for i in new_ids]
    layout.write_population(where, evaluated + discarded, name="offspring")
    layout.write_population(where, new_archive)
    fit = [r["fitness"] for r in new_archive]
    best = max(new_archive, key=lambda r: (r["fitness"], r["id"]))
    summary = {
        "generation": generation,
        "s_t": s_t,
        "best_fitness": max(fit),
        "mean_fitness": sum(fit) / len(fit),
        "best_score": best["score"],
        "mean_sparsity": sum(r["sparsity"] for r in new_archive) / len(new_archive),
        "accepted": sum(r["status"] == "accepted" for r in evaluated),
        "offspring": len(offspring),
        **{f"best.{task}": acc for task, acc in best["scores"].items()},
    }
    runlog.write_json(layout.metrics(where), summary)
    log.info(
        "generation %s: best fitness %.4f, mean %.4f, %d/%d offspring accepted",
        where,
        summary["best_fitness"],
        summary["mean_fitness"],
        summary["accepted"],
        len(offspring),
    )
    return new_archive, summary
