"""``saemerge inspect``: a run's generations, compute, attribution and lineage, read from its records."""

from __future__ import annotations

from collections.abc import Mapping

from saemerge import storage
from saemerge.errors import SaeMergeError
from saemerge.run.attribution import describe, pick_attribution
from saemerge.run.compute import summary_lines
from saemerge.run.layout import RunLayout
from saemerge.run.metrics import metrics_header, metrics_row
from saemerge.run.tables import read_json, read_table, table_to_rows


def all_individuals(layout: RunLayout) -> dict[str, dict]:
    """Every individual of the run by id (initial variants and offspring), latest record wins."""
    found: dict[str, dict] = {}
    for where in layout.stages():
        for name in ("offspring", "population"):
            uri = layout.population(where, name)
            if storage.exists(uri):
                for row in table_to_rows(read_table(uri)):
                    found.setdefault(row["id"], row)
    return found


def lineage(layout: RunLayout, member: str, people: Mapping[str, dict] | None = None) -> list[str]:
    """Lines of an indented tree from `member` back to the initial variants."""
    people = people if people is not None else all_individuals(layout)
    lines: list[str] = []

    def walk(mid: str, depth: int, seen: frozenset) -> None:
        rec = people.get(mid)
        if rec is None:
            lines.append("  " * depth + f"{mid} (not recorded)")
            return
        born = "initial" if rec["born"] < 0 else f"gen {rec['born']}"
        score = "" if rec.get("score") is None else f" score {rec['score']:.3f}"
        lines.append("  " * depth + f"{mid}  {rec['origin']}  ({born}, ρ {rec['sparsity']:.3f}{score})")
        if mid in seen:
            return
        for parent in rec.get("parents") or []:
            walk(parent, depth + 1, seen | {mid})

    walk(member, 0, frozenset())
    return lines


def generation_metrics(layout: RunLayout) -> list[dict]:
    """Each recorded generation's ``metrics.json`` (initial population first)."""
    return [read_json(uri) for uri in map(layout.metrics, layout.stages()) if storage.exists(uri)]


def describe_run(run: str) -> str:
    """`saemerge inspect`: one row per generation, the final pick's attribution to the experts
    (:mod:`saemerge.run.attribution`) and the lineage of the best model."""
    layout = RunLayout(run)
    if not storage.exists(layout.run_json):
        raise SaeMergeError(f"{run}: no run.json there (not a saemerge run)")
    rows = generation_metrics(layout)
    tasks = sorted({k[5:] for m in rows for k in m if k.startswith("best.")})
    lines = [metrics_header(tasks), *(metrics_row(m, tasks) for m in rows)]
    generations = layout.generations()
    if storage.exists(layout.final("compute.json")):
        lines += ["", "compute:", *["  " + line for line in summary_lines(read_json(layout.final("compute.json")))]]
    if storage.exists(layout.final("best.json")):
        best = read_json(layout.final("best.json"))["id"]
        title = "best model (final)"
        attribution = pick_attribution(layout)
        if attribution is not None:
            lines += ["", f"attribution of the best model {best} to the experts:", "  " + describe(attribution)]
    elif rows and generations:
        pop = layout.read_population(generations[-1])
        best = max(pop, key=lambda r: (r["fitness"], r["id"]))["id"]
        title = f"best model (generation {generations[-1]})"
    else:
        return "\n".join(lines)
    lines += ["", f"lineage of the {title}:"] + lineage(layout, best)
    return "\n".join(lines)
