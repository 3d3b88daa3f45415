"""The score cache: every per-example result of each model of a run (SAE-SPEC §4).

Scores are cached per (model content hash, task, example id) in the run's score cache
(:meth:`RunLayout.score_cache`), or under a prefix several runs share (``score_cache``), keyed
by :func:`cache_identity`. :class:`ScoreCache` alone knows what a model has been scored on:
re-scoring an archive member on a new optimisation set evaluates only the examples it has not
seen, and a resumed run evaluates nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

from saemerge import runlog, storage
from saemerge.evaluate.results import EvalResult
from saemerge.runlog import RunLayout
from saemerge.steps.evaluator import Docs

if TYPE_CHECKING:
    from saemerge.evaluate.taskset import TaskSet

log = logging.getLogger(__name__)


def cache_identity(config: Mapping, tasks: TaskSet | None = None) -> str:
    """What a cached score depends on besides (model content, task, example id): a short digest.

    The evaluator: lm-eval's version, dtype, device and batch size (padding can flip a greedy
    answer), the chat settings (the task directory's ``saemerge.yaml``), and per task its resolved sidecar and the bytes of every file
    its config reads (YAML, includes, the files its functions come from;
    :func:`saemerge.evaluate.tasksafety.task_identity`). The data: its content (``data_uri``'s
    manifest hash, or the hash of its files), not its URI, so re-uploaded data gets fresh scores
    and the same data elsewhere shares them. Tasks that draw few-shot examples at random add the
    run seed: their prompts differ between seeds. Runs with the same identity can share a
    score cache. The init step records it in ``run.json`` (``evaluator_identity``).

    Args:
        config: the run's configuration (``run.json``'s "config").
        tasks: its task set (default: resolved from ``tasks_uri`` and the sizes' task names).
    """
    from importlib.metadata import version

    from saemerge.evaluate.tasksafety import task_identity

    if tasks is None:
        from saemerge.evaluate.taskset import resolve_tasks

        names = list(dict.fromkeys([*config["opt_sizes"], *config.get("test_sizes", {})]))
        if config.get("tasks_uri"):
            with storage.local_input(config["tasks_uri"]) as task_dir:
                return cache_identity(config, resolve_tasks(names, task_dir))
        tasks = resolve_tasks(names)
    names = sorted(config["opt_sizes"])
    parts: dict = {
        "lm_eval": version("lm_eval"),
        "tasks": {t: task_identity(tasks[t], tasks) for t in names},
        "eval_dtype": config.get("eval_dtype"),
        "eval_device": config.get("eval_device"),
        "eval_batch_size": config.get("eval_batch_size"),
        "data": storage.identify(config["data_uri"])["identity"],
        "chat": dict(tasks.chat),
    }
    if any(tasks[t].shots and tasks[t].shot_order == "random" for t in names):
        parts["seed"] = config.get("seed")
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class ScoreCache:
    """Every per-example result of each model of a run, and what is still to be scored.

    The rows live in the run (``RUN/cache/scores/``), or under a prefix shared by several runs
    (the run parameter ``score_cache``, e.g. a study's): ``PREFIX/<cache_identity>/``, so two
    runs that make the same model, or the same baseline merge, score it once. Concurrent
    writers of one model's file may drop each other's new rows (the last write wins): those
    examples are evaluated again later, never scored wrong.
    """

    def __init__(self, layout: RunLayout, root: str | None = None):
        self.layout = layout
        self.root = root
        self._loaded: dict[str, EvalResult | None] = {}

    @classmethod
    def for_run(cls, layout: RunLayout) -> ScoreCache:
        """The run's cache: the shared one its ``run.json`` names, else the run's own."""
        info = runlog.read_json(layout.run_json) if storage.exists(layout.run_json) else {}
        config = info.get("config", {})
        shared = config.get("score_cache")
        if not shared:
            return cls(layout, None)
        identity = info.get("evaluator_identity") or cache_identity(config)
        return cls(layout, storage.join(shared, identity))

    def uri(self, digest: str) -> str:
        return storage.join(self.root, f"{digest}.parquet") if self.root else self.layout.score_cache(digest)

    def get(self, digest: str) -> EvalResult | None:
        """All cached rows of a model, or None when it was never scored."""
        if digest not in self._loaded:
            uri = self.uri(digest)
            self._loaded[digest] = self._read(uri, digest) if storage.exists(uri) else None
        return self._loaded[digest]

    def _read(self, uri: str, digest: str) -> EvalResult | None:
        """A model's cached rows; a file that does not parse (flipped bytes, a cut-off write) is
        set aside as ``<file>.corrupt``, named in the log, and rebuilt from the run's score tables.
        What those lack is scored again: scores are a function of the model and the example."""
        data = storage.read_bytes(uri)
        try:
            return EvalResult.from_table(runlog.table_from_bytes(data))
        except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        aside = f"{uri}.corrupt"
        storage.write_bytes(aside, data)
        rebuilt = self._from_stage_tables(digest)
        log.warning(
            "score cache %s is unreadable (%s): set aside as %s; %d rows recovered from the run's "
            "score tables, the rest is scored again",
            uri,
            reason,
            aside,
            len(rebuilt.per_example),
        )
        runlog.write_table(uri, rebuilt.to_table())
        return rebuilt if rebuilt.per_example else None

    def _from_stage_tables(self, digest: str) -> EvalResult:
        """The model's rows in the run's per-stage score tables (``init/``, ``gen-XX/``)."""
        rows = {}
        for uri in storage.list_uris(self.layout.root):
            name = uri.rsplit("/", 1)[-1]
            if RunLayout.scores_attempt(name) is None:
                continue
            try:
                table = runlog.read_table(uri)
            except (pa.ArrowException, OSError, ValueError):
                continue  # an unreadable table of its own: its rows are scored again
            mine = table.filter(pa.compute.equal(table["content_hash"], digest))
            for r in EvalResult.from_table(mine).per_example:
                rows[(r.task, r.example_id)] = r
        return EvalResult(list(rows.values()))

    def missing(self, digest: str, docs: Docs) -> dict[str, list[dict]]:
        """The docs of `docs` this model has no score for (tasks with none left are dropped)."""
        seen = self._keys(digest)
        todo = {t: [d for d in ds if (t, str(d["id"])) not in seen] for t, ds in docs.items()}
        return {t: ds for t, ds in todo.items() if ds}

    def add(self, digest: str, result: EvalResult) -> set[tuple[str, str]]:
        """Record new rows for a model (written through); returns the keys that were new."""
        rows = {(r.task, r.example_id): r for r in (self.get(digest) or EvalResult([])).per_example}
        fresh = {(r.task, r.example_id) for r in result.per_example} - set(rows)
        rows.update({(r.task, r.example_id): r for r in result.per_example})
        merged = EvalResult(list(rows.values()))
        runlog.write_table(self.uri(digest), merged.to_table())
        self._loaded[digest] = merged
        return fresh

    def on(self, digest: str, docs: Docs, model: str = "") -> EvalResult:
        """The model's cached rows for exactly the examples of `docs`, in sample order."""
        rows = {(r.task, r.example_id): r for r in (self.get(digest) or EvalResult([])).per_example}
        missing = [(t, str(d["id"])) for t, ds in docs.items() for d in ds if (t, str(d["id"])) not in rows]
        if missing:
            raise RuntimeError(f"model {digest[:12]}: {len(missing)} examples not scored, e.g. {missing[0]}")
        return EvalResult([rows[(t, str(d["id"]))] for t, ds in docs.items() for d in ds], model=model)

    def _keys(self, digest: str) -> set[tuple[str, str]]:
        cached = self.get(digest)
        return {(r.task, r.example_id) for r in cached.per_example} if cached else set()
