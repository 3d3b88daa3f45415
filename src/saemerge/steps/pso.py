"""Steps of the PSO search (SAE-SPEC §7): start the run, make the particles, move them, update the bests.

The swarm travels between steps as a list of particle states, one dict per particle in
particle order: ``{"particle", "index", "step", "x": record, "velocity": {"uri",
"content_hash"} (absent before the first move), "pbest": record, "gbest": record}``, where a
record is a model record (:mod:`saemerge.steps.records`) carrying its scores on the step's
sample. It is also the next step's loop items: a move needs nothing but its state.

Where a step is recorded: step 0 (the initial positions) as ``init``, update step ``k`` as
generation ``k − 1`` (``gen-XX``, XX = k − 1), so ``saemerge inspect``, the report and the
local progress lines read a PSO run as they read SAE's. Step k's optimisation set is
``samples/gen-k`` (drawn with generation = k: every step its own sample, step 0 included).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pyarrow as pa

from saemerge import storage
from saemerge.config import RunConfig, model_name
from saemerge.core.pso import Scored, coefficients, initial_particles, update_bests
from saemerge.errors import SaeMergeError
from saemerge.run.layout import RunLayout, gen_name
from saemerge.run.tables import write_json, write_table
from saemerge.steps.population import start_run as start_run_record
from saemerge.steps.records import find_recipe, input_identity, make_record, publish_model

log = logging.getLogger(__name__)

SWARM_SCHEMA = pa.schema(
    [
        ("step", pa.int32()),  # PSO step (0: the initial positions)
        ("generation", pa.int32()),  # where it is recorded (step − 1; -1 is init/)
        ("particle", pa.string()),
        ("position_id", pa.string()),  # the position after this step's move
        ("position_uri", pa.string()),
        ("position_fitness", pa.float64()),  # on this step's sample
        ("velocity_hash", pa.string()),  # null at step 0 (v0 = 0)
        ("velocity_uri", pa.string()),
        ("r1", pa.float64()),  # the move's random scalars (null at step 0)
        ("r2", pa.float64()),
        ("pbest_id", pa.string()),  # the personal best after the update
        ("pbest_uri", pa.string()),
        ("pbest_fitness", pa.float64()),  # on this step's sample
        ("improved", pa.bool_()),  # the position became the personal best
        ("gbest_id", pa.string()),
        ("gbest_fitness", pa.float64()),
    ]
)


def step_where(step: int) -> str:
    """The run directory a PSO step is recorded in: ``init`` for step 0, else ``gen-(step−1)``."""
    return gen_name(int(step) - 1)


# -- step 0 ---------------------------------------------------------------------------------
def start_run(config: RunConfig) -> list[dict]:
    """Check the inputs, write run.json (or check it on a resume), and list the particles to make.

    Returns:
        One dict per particle, in particle order: {"particle", "index", "source", "drop_p",
        "seed"} (:class:`saemerge.core.pso.ParticleSpec`).
    """
    if config.search != "pso":
        raise SaeMergeError(f"search {config.search!r}: the PSO steps run the pso search only")
    start_run_record(config)
    specs = initial_particles(
        config.base_uri if config.pso_include_base else None,
        [(model_name(e), e) for e in config.experts],
        config.pso_dare_copies,
        config.pso_drop_p,
        config.seed,
    )
    log.info("swarm of %d particles: %s", len(specs), ", ".join(s.name for s in specs))
    return [
        {"particle": s.name, "index": i, "source": s.source, "drop_p": s.drop_p, "seed": s.seed}
        for i, s in enumerate(specs)
    ]


def make_particle(run: str, spec: Mapping, *, base_uri: str, device: str = "cpu") -> dict:
    """A particle's starting position, content-addressed (a retry or resume reuses it)."""
    from saemerge.devices import merge_device
    from saemerge.ops.pso import init_particle_checkpoint

    device = merge_device(device)  # CUDA checked before anything is read (a GPU step fails at once)
    drop_p, seed = float(spec["drop_p"]), int(spec["seed"])
    origin = spec["particle"] + (f" (DARE p={drop_p:g})" if drop_p > 0 else "")
    key, record = find_recipe(
        run,
        op="pso_particle",
        source=input_identity(spec["source"]),
        base=input_identity(base_uri),
        drop_p=drop_p,
        seed=seed,
    )
    if record is None:

        def compute(out):
            with storage.local_input(spec["source"]) as src, storage.local_input(base_uri) as base:
                return init_particle_checkpoint(src, out, base=base, drop_p=drop_p, seed=seed, device=device)

        record = publish_model(
            run,
            key,
            compute,
            lambda s: make_record(
                s["content_hash"], s["uri"], origin=origin, sparsity=s["sparsity"], born=-1, generation=-1
            ),
        )
    return dict(record, particle=spec["particle"], index=int(spec["index"]), origin=origin, step=0)


# -- steps 1.. -------------------------------------------------------------------------------
def move_particle(
    run: str,
    state: Mapping,
    step: int,
    *,
    base_uri: str,
    seed: int,
    w: float,
    c1: float,
    c2: float,
    device: str = "cpu",
) -> dict:
    """Move one particle (``v' = w v + c1 r1 (pbest − x) + c2 r2 (gbest − x)``, ``x' = x + v'``).

    The new position (model dtype) and velocity (float32) are published content-addressed,
    the velocity first and the recipe last, so a retried or resumed move reuses both.

    Returns:
        The new position's record, with "particle", "index", "step", "velocity" {"uri",
        "content_hash"}, "r1" and "r2"; its parent is the position it moved from.
    """
    from saemerge.devices import merge_device
    from saemerge.ops.pso import pso_move_checkpoint

    device = merge_device(device)  # CUDA checked before anything is read (a GPU step fails at once)
    particle, x, pbest, gbest = state["particle"], state["x"], state["pbest"], state["gbest"]
    velocity = state.get("velocity") or {}
    r1, r2 = coefficients(seed, particle, step)
    params = dict(r1=r1, r2=r2, w=float(w), c1=float(c1), c2=float(c2))
    inputs = dict(x=x["content_hash"], pbest=pbest["content_hash"], gbest=gbest["content_hash"])
    if velocity:  # no "v" in the recipe: v0 = 0
        inputs["v"] = velocity["content_hash"]
    key, record = find_recipe(run, op="pso_move", **inputs, base=input_identity(base_uri), **params)
    if record is not None and not storage.exists(record["velocity"]["uri"]):
        record = None
    if record is None:
        layout = RunLayout(run)

        def compute(out):
            with ExitStack() as stack:
                x_dir, p_dir, g_dir = (stack.enter_context(storage.local_input(r["uri"])) for r in (x, pbest, gbest))
                base = stack.enter_context(storage.local_input(base_uri))
                v = stack.enter_context(storage.local_input(velocity["uri"])) if velocity else None
                scratch = stack.enter_context(_scratch("velocity-"))
                summary = pso_move_checkpoint(
                    x_dir,
                    p_dir,
                    g_dir,
                    out,
                    scratch / "v",
                    base=base,
                    velocity=v,
                    r1=r1,
                    r2=r2,
                    w=float(w),
                    c1=float(c1),
                    c2=float(c2),
                    device=device,
                )
                v_uri = layout.velocity(summary["velocity_hash"])
                if not storage.exists(v_uri):
                    with storage.local_output(v_uri, content_hash=summary["velocity_hash"]) as v_out:
                        for item in (scratch / "v").iterdir():
                            shutil.move(str(item), v_out / item.name)
                return dict(summary, velocity={"uri": v_uri, "content_hash": summary["velocity_hash"]})

        record = publish_model(
            run,
            key,
            compute,
            lambda s: make_record(
                s["content_hash"],
                s["uri"],
                parents=[x["id"]],
                origin=f"pso {particle}",
                sparsity=s["sparsity"],
                velocity=s["velocity"],
            ),
        )
    return dict(
        record,
        particle=particle,
        index=int(state["index"]),
        step=step,
        born=step - 1,
        generation=step - 1,
        r1=r1,
        r2=r2,
    )


@contextmanager
def _scratch(prefix: str) -> Iterator[Path]:
    """A scratch directory, removed on exit (a velocity waits there until it is published)."""
    path = storage.scratch_dir(prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def candidates(moved: Sequence[Mapping], swarm: Sequence[Mapping]) -> list[dict]:
    """What a step evaluates: the new positions, every personal best and the global best, each model once."""
    out, seen = [], set()
    bests = [s["pbest"] for s in swarm] + [s["gbest"] for s in swarm[:1]]
    for record in sorted(moved, key=lambda r: int(r["index"])) + bests:
        if record["content_hash"] not in seen:
            seen.add(record["content_hash"])
            out.append(dict(record))
    return out


def update_swarm(
    run: str, step: int, swarm: Sequence[Mapping], moved: Sequence[Mapping], scored: Sequence[Mapping]
) -> tuple[list[dict], dict, dict]:
    """Compare every particle's new position with its personal best on step `step`'s sample; update the bests.

    Args:
        swarm: the states after the previous step ([] at step 0).
        moved: the new positions (the initial ones at step 0), one record per particle.
        scored: :func:`candidates` as the evaluate step returned them: scores on this step's sample.

    Writes ``offspring.parquet`` (each new position, accepted when it became its particle's
    personal best), ``population.parquet`` (the personal bests), ``swarm.parquet`` and
    ``metrics.json`` under :func:`step_where`.

    Returns:
        (the new swarm states, the global best's record, the step's summary for the UI).
    """
    where, generation = step_where(step), step - 1
    fit = {r["content_hash"]: r for r in scored}

    def rescored(record: Mapping) -> dict:
        s = fit.get(record["content_hash"])
        if s is None or s.get("fitness") is None:
            raise SaeMergeError(f"PSO step {step}: {record['id']} was not scored on this step's sample")
        return dict(record, scores=s["scores"], score=s["score"], fitness=s["fitness"], n_scored=s["n_scored"])

    by_particle = {r["particle"]: rescored(r) for r in moved}
    order = (
        [s["particle"] for s in swarm]
        if swarm
        else [r["particle"] for r in sorted(moved, key=lambda r: int(r["index"]))]
    )
    if set(order) != set(by_particle):
        raise SaeMergeError(f"PSO step {step}: moved particles {sorted(by_particle)} are not the swarm's {order}")
    positions = {p: Scored(by_particle[p]["id"], by_particle[p]["fitness"]) for p in order}
    records = {r["id"]: r for r in by_particle.values()}
    beaten: dict[str, float] = {}
    if swarm:
        old = {s["particle"]: rescored(s["pbest"]) for s in swarm}
        beaten = {p: r["fitness"] for p, r in old.items()}
        old_g = rescored(swarm[0]["gbest"])
        records.update({r["id"]: r for r in [*old.values(), old_g]})
        bests = update_bests(
            order,
            positions,
            {p: Scored(r["id"], r["fitness"]) for p, r in old.items()},
            Scored(old_g["id"], old_g["fitness"]),
        )
    else:
        bests = update_bests(order, positions)
    pbest = {p: dict(records[bests.pbest[p].model], generation=generation) for p in order}
    gbest = dict(records[bests.gbest.model], generation=generation)
    improved = set(bests.improved)

    new_swarm = []
    for i, p in enumerate(order):
        x = by_particle[p]
        state = {"particle": p, "index": i, "step": step, "x": x, "pbest": pbest[p], "gbest": gbest}
        if x.get("velocity"):
            state["velocity"] = x["velocity"]
        new_swarm.append(state)
    _record(run, step, new_swarm, improved, beaten)
    summary = _summary(step, new_swarm, improved)
    write_json(RunLayout(run).metrics(where), summary)
    log.info(
        "PSO step %d (%s): gbest %s fitness %.4f; %d/%d personal bests improved",
        step,
        where,
        gbest["id"],
        gbest["fitness"],
        len(improved),
        len(order),
    )
    return new_swarm, gbest, summary


def _record(run: str, step: int, swarm: Sequence[Mapping], improved: set[str], beaten: Mapping[str, float]) -> None:
    """The step's tables: new positions (offspring), personal bests (population), the swarm.

    `beaten`: each particle's previous personal best's fitness on this step's sample.
    """
    layout, where, generation = RunLayout(run), step_where(step), step - 1
    positions = []
    for s in swarm:
        x = dict(s["x"], generation=generation)
        if step == 0:
            x.update(status="accepted", reason="initial position")
        else:
            ok = s["particle"] in improved
            x.update(
                status="accepted" if ok else "rejected",
                reason=f"{'beats' if ok else 'does not beat'} its personal best on this step's sample "
                f"({x['fitness']:.4f} vs {beaten[s['particle']]:.4f})",
            )
        positions.append(x)
    members, seen = [], set()
    for s in swarm:
        if s["pbest"]["id"] not in seen:
            seen.add(s["pbest"]["id"])
            members.append(dict(s["pbest"], status="member"))
    layout.write_population(where, positions, name="offspring")
    layout.write_population(where, members)
    g = swarm[0]["gbest"]
    rows = [
        {
            "step": step,
            "generation": generation,
            "particle": s["particle"],
            "position_id": s["x"]["id"],
            "position_uri": s["x"]["uri"],
            "position_fitness": s["x"]["fitness"],
            "velocity_hash": (s.get("velocity") or {}).get("content_hash"),
            "velocity_uri": (s.get("velocity") or {}).get("uri"),
            "r1": s["x"].get("r1"),
            "r2": s["x"].get("r2"),
            "pbest_id": s["pbest"]["id"],
            "pbest_uri": s["pbest"]["uri"],
            "pbest_fitness": s["pbest"]["fitness"],
            "improved": s["particle"] in improved,
            "gbest_id": g["id"],
            "gbest_fitness": g["fitness"],
        }
        for s in swarm
    ]
    write_table(layout.swarm(where), pa.Table.from_pylist(rows, schema=SWARM_SCHEMA))


def _summary(step: int, swarm: Sequence[Mapping], improved: set[str]) -> dict:
    """metrics.json: the keys of :data:`saemerge.run.tables.GEN_METRICS` (s_t is 0: PSO has no schedule).

    Means are over particles: of their personal bests (mean_fitness, mean_sparsity) and of
    their new positions (mean_position_fitness).
    """
    g = swarm[0]["gbest"]
    pb = [s["pbest"] for s in swarm]
    return {
        "generation": step - 1,
        "step": step,
        "s_t": 0.0,
        "best_fitness": g["fitness"],
        "mean_fitness": sum(r["fitness"] for r in pb) / len(pb),
        "best_score": g["score"],
        "mean_sparsity": sum(r["sparsity"] for r in pb) / len(pb),
        "mean_position_fitness": sum(s["x"]["fitness"] for s in swarm) / len(swarm),
        "accepted": len(improved),
        "offspring": len(swarm),
        **{f"best.{task}": acc for task, acc in g["scores"].items()},
    }
