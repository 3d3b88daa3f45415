"""What a run spent: step timings and memory, and the summary in ``final/compute.json``.

Every step that makes or scores models wraps its work in :func:`measured`, which appends one
record under ``RUN/compute/<kind>/`` (a new object per attempt, so a retried or resumed step
never overwrites what an earlier attempt recorded): wall and CPU seconds, and the peak
resident memory of the step's process. :func:`summarize` adds the records up with the score
tables' ``fresh`` column (examples evaluated vs taken from the cache), so searches can be
compared by what they spent, not only by what they found.
"""

from __future__ import annotations

import logging
import os
import resource
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from saemerge import image, storage
from saemerge.run.layout import RunLayout
from saemerge.run.tables import read_json, read_table, write_json

log = logging.getLogger(__name__)

# Kinds of step records: those that make models (merge/prune time, peak memory) and evaluation.
MODEL_KINDS = ("prune", "merge", "baseline", "pso_move", "crossover")
EVAL_KINDS = ("evaluate", "final_evaluate")


def peak_rss_bytes() -> int:
    """The peak resident set size of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@contextmanager
def measured(run: str, kind: str, label: str = "") -> Iterator[dict]:
    """Time the block and record it under ``RUN/compute/<kind>/``; the yielded dict takes extra figures.

    The record is written when the block ends, also when it fails (``"ok": false``): failed
    attempts spent compute too.
    """
    extra: dict = {}
    wall, cpu = time.perf_counter(), time.process_time()
    ok = False
    try:
        yield extra
        ok = True
    finally:
        record = {
            "kind": kind,
            "label": label,
            "ok": ok,
            "seconds": time.perf_counter() - wall,
            "cpu_seconds": time.process_time() - cpu,
            "peak_rss_bytes": peak_rss_bytes(),
            "pid": os.getpid(),
            "finished": time.time(),
            "image": image(),
            **extra,
        }
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        try:
            write_json(RunLayout(run).compute_record(kind, name), record)
        except Exception as exc:  # accounting must never fail the work it accounts for
            log.warning("could not record compute for %s %s: %s", kind, label, exc)


def records(layout: RunLayout) -> list[dict]:
    """Every compute record of the run."""
    return [read_json(uri) for uri in storage.list_uris(layout.compute_dir) if uri.endswith(".json")]


def _stage_tables(layout: RunLayout) -> dict[str, list[tuple[int, str]]]:
    """Each evaluate stage's score tables, (attempt, URI) in attempt order, by ``<dir>/<stage>``."""
    stages: dict[str, list[tuple[int, str]]] = {}
    for uri in storage.list_uris(layout.root):
        directory, name = uri.rsplit("/", 1)
        parsed = RunLayout.scores_attempt(name)
        if parsed:
            stages.setdefault(f"{directory}/{parsed[0]}", []).append((parsed[1], uri))
    return {stage: sorted(tables) for stage, tables in stages.items()}


def _stage_examples(tables: list[tuple[int, str]]) -> tuple[int, int, set[str]]:
    """(fresh, cached, models evaluated fresh) of one stage over its attempts.

    The last attempt's table holds every (model, example) the stage scored; a row is fresh when
    some attempt evaluated it (a rerun finds an earlier attempt's rows in the cache, and they
    count once, as that attempt's)."""
    evaluated: set[tuple] = set()
    models: set[str] = set()
    rows: list[tuple] = []
    for _, uri in tables:
        table = read_table(uri)
        rows = list(zip(*(table.column(c).to_pylist() for c in ("content_hash", "task", "example_id")), strict=True))
        for key, fresh in zip(rows, table.column("fresh").to_pylist(), strict=True):
            if fresh:
                evaluated.add(key)
                models.add(key[0])
    fresh_rows = sum(key in evaluated for key in rows)
    return fresh_rows, len(rows) - fresh_rows, models


def summarize(layout: RunLayout) -> dict:
    """The run's compute: models evaluated, examples fresh vs cached, step seconds, peak memory.

    Examples are counted per evaluate stage, once each: a stage that ran again (a retried step,
    a resumed run) counts the rows its earlier attempt evaluated as fresh, not again as cached.
    """
    recs = records(layout)
    fresh = cached = 0
    models: set[str] = set()
    for tables in _stage_tables(layout).values():
        stage_fresh, stage_cached, stage_models = _stage_examples(tables)
        fresh += stage_fresh
        cached += stage_cached
        models |= stage_models
    by_kind: dict[str, dict] = {}
    for r in recs:
        k = by_kind.setdefault(r["kind"], {"steps": 0, "seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_bytes": 0})
        k["steps"] += 1
        k["seconds"] += r["seconds"]
        k["cpu_seconds"] += r["cpu_seconds"]
        k["peak_rss_bytes"] = max(k["peak_rss_bytes"], r["peak_rss_bytes"])
    model_recs = [r for r in recs if r["kind"] in MODEL_KINDS]
    return {
        "models_evaluated": len(models),
        "examples_fresh": fresh,
        "examples_cached": cached,
        "merge_prune_seconds": sum(r["seconds"] for r in model_recs),
        "evaluation_seconds": sum(r["seconds"] for r in recs if r["kind"] in EVAL_KINDS),
        "merge_peak_rss_bytes": max((r["peak_rss_bytes"] for r in model_recs), default=0),
        "failed_attempts": sum(not r["ok"] for r in recs),
        "by_kind": dict(sorted(by_kind.items())),
    }


def summary_lines(summary: Mapping) -> list[str]:
    """A few readable lines (the report and `saemerge inspect`)."""
    mib = summary["merge_peak_rss_bytes"] / 2**20
    return [
        f"models evaluated: {summary['models_evaluated']}; examples scored: {summary['examples_fresh']} fresh, "
        f"{summary['examples_cached']} from the cache",
        f"merge/prune: {summary['merge_prune_seconds']:.1f} s (peak RSS {mib:.0f} MiB); "
        f"evaluation: {summary['evaluation_seconds']:.1f} s; failed attempts: {summary['failed_attempts']}",
    ]
