"""Read a study's finished runs into the report's inputs, and publish the report under the study.

Per finished run (``final/`` of each run, :class:`~saemerge.run.layout.RunLayout`): the per-example
test scores of every method (``final/scores.parquet``), the search's optimisation-set score
(``final/best.json``; per task from the run's score cache), its compute (``final/compute.json``)
and the pick's attribution to the experts (:mod:`saemerge.run.attribution`, cached in the run). The search's row is named after
its arm. The other rows (base, experts, one-shot merges) are the same in every arm's run of a
(bench seed, run seed): they are taken from one run each, and the experts and one-shot merges
are attributed too (:func:`attribute_models`: once per model, not once per run).

Items that are not independent are scored as clusters: a test doc with a ``cluster`` field
(the tiny bench's multiple-choice items: six phrasings of one fact in one language) counts as
one item of its cluster's mean score, so the bootstrap resamples facts, not phrasings, and the
intervals do not pretend to more items than there are.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pyarrow as pa

from saemerge import storage
from saemerge.errors import SaeMergeError
from saemerge.run.layout import RunLayout, member_id
from saemerge.run.tables import read_json, read_table
from saemerge.steps.evaluation import read_sample
from saemerge.study.runner import SUCCEEDED, StudyLayout, StudyRecord

log = logging.getLogger(__name__)

# Given a bench, these rows do not depend on the run seed (task arithmetic does: its alpha is
# chosen on the run's first optimisation sample).
DETERMINISTIC = ("base", "weight_average", "ties", "rankmean", "dare_linear", "dare_ties")


def is_deterministic(method: str) -> bool:
    return method in DETERMINISTIC or method.startswith("expert:")


# Step kinds that belong to the final evaluation (the test set, the one-shot merges and task
# arithmetic's choice of alpha), not to the search.
FINAL_KINDS = ("final_evaluate", "baseline")


def _wall_time(entries) -> str:
    """The header line of the runs' wall time: those this study ran (runs reused from another
    study cost it nothing, and are counted apart)."""
    entries = list(entries)
    reused = [e for e in entries if e.get("reused_from")]
    line = f"Runs' wall time (sum): {sum(e.get('seconds', 0.0) for e in entries if not e.get('reused_from')):.0f} s"
    if reused:
        line += f" ({len(reused)} run{'s' if len(reused) > 1 else ''} reused from other studies, not counted)"
    return line


def search_seconds(compute: dict) -> float:
    """Step seconds the search spent (prune, merge, evaluate, ...), without the final evaluation.

    With a study's shared score cache, a run whose models another run already scored spends
    less: compare searches by the examples they asked for as well.
    """
    return float(sum(k["seconds"] for kind, k in compute.get("by_kind", {}).items() if kind not in FINAL_KINDS))


def _clusters(layout: RunLayout) -> dict[tuple[str, str], str]:
    """(task, example id) -> cluster of the run's test docs (the id itself when a doc has none)."""
    with storage.local_input(layout.test_sample) as test_dir:
        docs = read_sample(test_dir)
    return {
        (t.removesuffix(".test"), str(d["id"])): str(d.get("cluster") or d["id"]) for t, ds in docs.items() for d in ds
    }


def _opt_by_task(layout: RunLayout, best: dict) -> dict[str, float]:
    """The pick's accuracy per task over every optimisation example the run drew (what its
    macro ``overall_score`` averages), from the run's score cache; {} when unknown."""
    from saemerge.evaluate.results import EvalResult
    from saemerge.steps.final import optimisation_keys
    from saemerge.steps.score_cache import ScoreCache

    cached = ScoreCache.for_run(layout).get(best["content_hash"]) if best.get("content_hash") else None
    if cached is None:
        return {}
    keys = optimisation_keys(layout)
    rows = [r for r in cached.per_example if (r.task, r.example_id) in keys]
    return EvalResult(rows).per_task if rows else {}


def _pick_attribution(layout: RunLayout) -> dict | None:
    """The pick's attribution to the experts (:mod:`saemerge.run.attribution`); None (logged) when it
    cannot be computed (a model gone): the report still renders."""
    from saemerge.run.attribution import pick_attribution

    try:
        return pick_attribution(layout)
    except SaeMergeError as exc:
        log.warning("%s: no attribution of the pick (%s)", layout.root, exc)
        return None


def _run_rows(state: dict, arm: str) -> tuple[list[dict], list[dict]]:
    """(per-cluster score rows, per-method run rows) of one finished run."""
    layout = RunLayout(state["run_uri"])
    results = layout.read_results()
    search = layout.read_config().get("search", "sae")
    clusters = _clusters(layout)
    table = read_table(layout.final("scores.parquet")).select(["method", "task", "example_id", "correct"])
    sums: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in table.to_pylist():
        cluster = clusters.get((r["task"], r["example_id"]), r["example_id"])
        sums[(r["method"], r["task"], cluster)].append(float(r["correct"]))
    name = {search: arm}
    scores = [
        {
            "bench_seed": state["bench_seed"],
            "run_seed": state["run_seed"],
            "method": name.get(method, method),
            "task": task,
            "example_id": cluster,
            "score": sum(v) / len(v),
        }
        for (method, task, cluster), v in sums.items()
    ]
    compute = read_json(layout.final("compute.json")) if storage.exists(layout.final("compute.json")) else {}
    best = read_json(layout.final("best.json")) if storage.exists(layout.final("best.json")) else {}
    runs = []
    for row in results:
        mine = row["method"] == search
        runs.append(
            {
                "bench_seed": state["bench_seed"],
                "run_seed": state["run_seed"],
                "method": name.get(row["method"], row["method"]),
                "macro": row["macro"],
                "opt_score": best.get("overall_score") if mine else None,
                "test_by_task": dict(row["scores"]),
                "opt_by_task": (_opt_by_task(layout, best) if best else {}) if mine else {},
                "attribution": _pick_attribution(layout) if mine else None,
                "compute_seconds": search_seconds(compute) if mine and compute else None,
                "evaluated_examples": (
                    compute.get("examples_fresh", 0) + compute.get("examples_cached", 0) if mine and compute else None
                ),
                "run_uri": state["run_uri"],
                "model_uri": best.get("uri") if mine and best else row["uri"],
            }
        )
    return scores, runs


def attribute_models(runs: list[dict], arms: Collection[str]) -> None:
    """Set the attribution of every row's model but the arms' picks (they have theirs) and the
    base (its task vector is zero): the experts and the one-shot merges.

    A model is attributed once per call, by its identity and its run's base and experts: the
    weight average of a bench is the same model in every run of that bench (one pass over its
    tensors, not one per run seed), and each computation is kept in the run it came from
    (:func:`saemerge.run.attribution.model_attribution`), so the next report reads it back. A
    model that cannot be read is logged and left without one: the report still renders.
    """
    from saemerge.run.attribution import model_attribution

    done: dict[tuple[str, str, tuple[str, ...]], dict] = {}
    for row in runs:
        if row["method"] in arms or row["method"] == "base" or not row.get("model_uri"):
            continue
        layout = RunLayout(row["run_uri"])
        try:
            info = read_json(layout.run_json)
            key = (storage.identify(row["model_uri"])["identity"], str(info["base"]), tuple(info["experts"]))
            if key not in done:
                record = {"id": member_id(key[0]), "content_hash": key[0], "uri": row["model_uri"]}
                done[key] = model_attribution(layout, record)
        except (SaeMergeError, KeyError) as exc:
            log.warning("%s: no attribution of %s (%s)", layout.root, row["method"], exc)
            continue
        row["attribution"] = done[key]


def collect(record: StudyRecord) -> tuple[pa.Table, list[dict], list[str]]:
    """(per-item score table, run rows, the finished runs' ids) of every finished run.

    Rows of methods other than the arms come from the first arm (in the study's order) with a
    finished run of each (bench seed, run seed).
    """
    record.refresh()
    arm_order = [a.name for a in record.spec.arms]
    done = sorted(
        (e for e in record.entries.values() if e["status"] == SUCCEEDED),
        key=lambda e: (e["bench_seed"], e["run_seed"], arm_order.index(e["arm"])),
    )
    if not done:
        raise SaeMergeError(f"study {record.layout.study_id}: no finished run to report on yet ({record.counts()})")
    scores: list[dict] = []
    runs: list[dict] = []
    shared_from: set[tuple[int, int]] = set()
    for state in done:
        s, r = _run_rows(state, state["arm"])
        unit = (state["bench_seed"], state["run_seed"])
        first = unit not in shared_from
        shared_from.add(unit)
        scores += [x for x in s if x["method"] == state["arm"] or (first and x["method"] not in arm_order)]
        runs += [x for x in r if x["method"] == state["arm"] or (first and x["method"] not in arm_order)]
    attribute_models(runs, arm_order)
    return pa.Table.from_pylist(scores), runs, [e["id"] for e in done]


def report_study(
    study_id: str, *, bucket: str = "saemerge", out_dir: Path | None = None, n_boot: int = 2000
) -> tuple[str, list[dict]]:
    """Aggregate the study's finished runs into ``studies/<id>/report/`` (and `out_dir` locally).

    Returns:
        (where the report is: `out_dir`, else its S3 prefix; the summary rows per method and task).

    Raises:
        SaeMergeError: no such study, or no finished run (nothing is written).
    """
    from saemerge.study.report import write_report

    layout = StudyLayout(bucket, study_id)
    record = StudyRecord.open(layout)
    t = time.perf_counter()
    scores, runs, finished = collect(record)
    spec = record.spec
    methods = sorted({r["method"] for r in runs})
    deterministic = {m for m in methods if is_deterministic(m)}
    total = len(record.entries)
    header = [
        f"Reproduce: `saemerge study run --local {spec.name}` then `saemerge study report {study_id}`",
        f"Study: {spec.description or spec.name}",
        f"Runs finished: {len(finished)} of {total} (arms {', '.join(a.name for a in spec.arms)}; "
        f"bench seeds {list(spec.bench_seeds)}, run seeds {list(spec.run_seeds)})",
        _wall_time(record.entries.values()),
        "Multiple-choice items are scored per fact and language (the mean over its phrasings): the "
        "bootstrap resamples facts, not phrasings.",
    ]
    with tempfile.TemporaryDirectory(prefix="saemerge-study-report-") as tmp:
        local = Path(out_dir) if out_dir else Path(tmp)
        local.mkdir(parents=True, exist_ok=True)
        written = write_report(
            local,
            scores,
            runs,
            title=f"Study {study_id}",
            reference=spec.reference,
            deterministic=deterministic,
            header=header,
            n_boot=n_boot,
            arms=[a.name for a in spec.arms],
        )
        with storage.local_output(layout.report) as out:
            for path in local.iterdir():
                if path.is_file():
                    (out / path.name).write_bytes(path.read_bytes())
    log.info(
        "study %s: report of %d runs in %.1f s at %s", study_id, len(finished), time.perf_counter() - t, layout.report
    )
    return (str(local) if out_dir else layout.report), written["summary"]


def study_status(study_id: str, *, bucket: str = "saemerge") -> dict[str, Any]:
    record = StudyRecord.open(StudyLayout(bucket, study_id))
    record.refresh()
    return {"study": study_id, "counts": record.counts(), "entries": list(record.entries.values())}
