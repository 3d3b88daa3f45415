"""Steps that score: the optimisation set of a generation, and scoring through a per-example cache.

Scores are cached per (model content hash, task, example id) in the run's score cache
(:meth:`RunLayout.score_cache`, SAE-SPEC §4). :class:`ScoreCache` alone knows what a model has
been scored on: re-scoring an archive member on a new optimisation set evaluates only the
examples it has not seen, and a resumed run evaluates nothing twice. The evaluator is a seam:
steps receive a factory (:data:`EvaluatorFactory`) and never build lm-eval themselves, so
tests can give them the scripted model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

from saemerge import runlog, storage
from saemerge.config import RunConfig
from saemerge.core.fitness import fitness, macro_average
from saemerge.errors import SaeMergeError
from saemerge.evaluate.results import EvalResult
from saemerge.evaluate.taskspec import read_jsonl
from saemerge.runlog import RunLayout

if TYPE_CHECKING:
    from saemerge.evaluate.taskset import TaskSet

log = logging.getLogger(__name__)

Docs = Mapping[str, Sequence[dict]]  # task -> the docs of a sample (each with an "id")


class Scorer(Protocol):
    """What steps need of an evaluator (:class:`saemerge.evaluate.evaluator.Evaluator`).

    ``score`` returns a row for every doc of ``samples``, evaluating only those without a row
    in ``already_scored`` (the model's cached rows), whose rows it returns as they were.
    """

    def score(
        self, model_dir: str | Path, samples: Docs, *, already_scored: EvalResult | None = None
    ) -> EvalResult: ...


# tasks -> a context manager giving a Scorer for those tasks
EvaluatorFactory = Callable[[Sequence[str]], AbstractContextManager[Scorer]]


def lm_eval_evaluator(
    device: str = "auto", dtype: str = "auto", batch_size: int = 16, *, run: str | None = None
) -> EvaluatorFactory:
    """The production evaluator: lm-eval on the run's task set, one model kept loaded.

    With `run`, its tasks (the user's task directory included) and its chat settings come from
    the run's ``run.json``; without, the shipped and installed lm-eval tasks, no chat template.

    The device is decided here, before any model is fetched: a step compiled with a GPU whose
    CUDA is not usable fails now, in one line (:func:`saemerge.devices.resolve_device`).
    """
    from saemerge.devices import resolve_device

    return _WarmEvaluator(run, device=resolve_device(device), dtype=dtype, batch_size=batch_size)


class _WarmEvaluator:
    """An evaluator factory that keeps the Evaluator it opened for the next ``with``.

    A step that scores in rounds (the final evaluation: task-arithmetic candidates, then the
    test set) then builds lm-eval's model and task index once. Another task list, or an
    exception inside a ``with``, closes it; it is closed for good with :meth:`close` or when
    the factory is collected (at the latest when the process ends).
    """

    def __init__(self, run: str | None = None, **kwargs):
        self.run = run
        self.kwargs = kwargs
        self._evaluator: Scorer | None = None
        self._tasks: tuple[str, ...] = ()
        self._finalizer: weakref.finalize | None = None

    @contextmanager
    def __call__(self, tasks: Sequence[str]) -> Iterator[Scorer]:
        from saemerge.evaluate.evaluator import Evaluator
        from saemerge.evaluate.taskset import resolve_tasks
        from saemerge.steps.settings import tasks_of

        if self._evaluator is None or self._tasks != tuple(tasks):
            self.close()
            stack = ExitStack()
            kwargs = dict(self.kwargs)
            if self.run is not None:
                taskset = stack.enter_context(tasks_of(self.run, tasks))
                kwargs.update(code_opt_in(self.run))
            else:
                taskset = resolve_tasks(list(tasks))
            try:
                evaluator = Evaluator(taskset, **kwargs)
            except BaseException:
                stack.close()
                raise
            stack.callback(evaluator.close)
            self._evaluator = evaluator
            self._tasks = tuple(tasks)
            self._finalizer = weakref.finalize(self, stack.close)
        scorer = self._evaluator
        assert scorer is not None, "opened above"
        try:
            yield scorer
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # Evaluator.close (and the task directory's removal), once
        self._evaluator, self._finalizer = None, None


def code_opt_in(run: str) -> dict:
    """The run's task-code opt-in (``run.json``'s ``task_code``; off when not recorded), as
    :class:`~saemerge.evaluate.evaluator.Evaluator` takes it. The chat settings come with the
    task set (its directory's ``saemerge.yaml``)."""
    layout = RunLayout(run)
    config = layout.read_config() if storage.exists(layout.run_json) else {}
    return {"allow_task_code": bool(config.get("task_code", False))}


def run_opt_splits(run: str) -> tuple[str, ...]:
    """The run's ``opt_splits`` as ``run.json`` records them (written by the init step, which every
    sample runs after: the pipelines order the first sample after it, later ones follow the archive).

    A run.json of a run started before the parameter existed has none: the default, train and
    validation.

    Raises:
        SaeMergeError: no run.json (a sample started before its run's init step).
    """
    from saemerge.config import split_names

    layout = RunLayout(run)
    if not storage.exists(layout.run_json):
        raise SaeMergeError(f"{layout.run_json}: not written (the run's init step writes it before any sample)")
    default = RunConfig.__dataclass_fields__["opt_splits"].default
    return split_names(layout.read_config().get("opt_splits", default))


def sample_optimisation_set(run: str, generation: int, data_uri: str, opt_sizes: Mapping[str, int], seed: int) -> str:
    """Draw generation `generation`'s optimisation set into the run, from the splits the run's
    ``opt_splits`` names (train/validation by default; never test)."""
    from saemerge.evaluate.sampling import sample_optimisation_set as draw

    uri = RunLayout(run).sample(generation)
    if storage.exists(uri):
        return uri
    from saemerge.steps.settings import tasks_of

    splits = run_opt_splits(run)
    with (
        tasks_of(run, list(opt_sizes)) as tasks,
        storage.local_input(data_uri) as data,
        storage.local_output(uri) as out,
    ):
        draw(tasks, dict(opt_sizes), data=data, seed=seed, generation=generation, out_dir=out, splits=splits)
    return uri


def read_sample(sample_dir: Path) -> dict[str, list[dict]]:
    """The docs of a sample directory (``<task>.jsonl`` files), by task."""
    files = {p.name[: -len(".jsonl")]: p for p in sorted(Path(sample_dir).glob("*.jsonl"))}
    if not files:
        raise SaeMergeError(f"{sample_dir}: the sample holds no <task>.jsonl files")
    return {task: read_jsonl(path) for task, path in files.items()}


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


def score_models(
    cache: ScoreCache, records: Sequence[Mapping], docs: Docs, evaluator: EvaluatorFactory
) -> dict[str, tuple[EvalResult, set[tuple[str, str]]]]:
    """Per-example results of each record's model on `docs`, evaluating only what the cache lacks.

    The evaluator is opened once, on the first model that needs scoring, and serves them all.
    Every model is given the same docs with its cached rows, so the evaluator builds its tasks
    for the sample once and evaluates for each model only the examples it lacks.

    Returns:
        {content_hash: (EvalResult on exactly the docs' examples, the (task, example_id) keys
        evaluated by this call)}.
    """
    out: dict[str, tuple[EvalResult, set[tuple[str, str]]]] = {}
    with ExitStack() as stack:
        scorer: Scorer | None = None
        for record in records:
            digest = record["content_hash"]
            if digest in out:
                continue
            todo = cache.missing(digest, docs)
            fresh: set[tuple[str, str]] = set()
            if todo:
                if scorer is None:
                    scorer = stack.enter_context(evaluator(list(docs)))
                with storage.local_input(record["uri"]) as model_dir:
                    fresh = cache.add(digest, scorer.score(model_dir, docs, already_scored=cache.get(digest)))
            else:
                log.info("%s: all %d examples already scored", record["id"], sum(map(len, docs.values())))
            out[digest] = (cache.on(digest, docs, model=record["uri"]), fresh)
    return out


def evaluate_candidates(
    run: str,
    generation: int,
    stage: str,
    candidates: Sequence[Mapping],
    sample: str,
    *,
    gamma: float,
    evaluator: EvaluatorFactory,
) -> list[dict]:
    """Score candidates on a generation's optimisation set; fitness = macro + γ·ρ (SAE-SPEC §4),
    the macro average weighted by the tasks' weights (:func:`task_weights`).

    Discarded offspring pass through unscored. Writes the stage's per-example results to
    ``gen-XX/scores-<stage>.parquet`` (``init/`` for generation -1), with ``fresh`` true for
    the rows this call evaluated and false for those taken from the cache.
    """
    layout = RunLayout(run)
    weights = task_weights(run)
    todo = [c for c in candidates if c.get("status") != "discarded" and c.get("uri")]
    log.info("evaluate step: generation %d, stage %s: %d candidates to score", generation, stage, len(todo))
    results = {}
    if todo:
        with storage.local_input(sample) as sample_dir:
            results = score_models(ScoreCache.for_run(layout), todo, read_sample(sample_dir), evaluator)
    scored, tables = [], []
    for c in candidates:
        c = dict(c)
        if c.get("status") != "discarded" and c.get("uri"):
            result, fresh = results[c["content_hash"]]
            per_task = result.per_task
            c["scores"] = per_task
            c["score"] = macro_average(per_task, weights)
            c["fitness"] = fitness(c["score"], c["sparsity"], gamma)
            c["n_scored"] = len(result.per_example)
            table = result.to_table()
            n = table.num_rows
            tables.append(
                table.append_column("content_hash", pa.array([c["content_hash"]] * n))
                .append_column("model_id", pa.array([c["id"]] * n))
                .append_column("fresh", pa.array([(r.task, r.example_id) in fresh for r in result.per_example]))
            )
        scored.append(c)
    if tables:
        runlog.write_table(layout.new_scores(generation, stage), pa.concat_tables(tables))
    return scored


def task_weights(run: str) -> dict[str, float]:
    """The tasks' weights as the run's init step recorded them (``run.json``'s ``tasks``);
    empty (equal weights) for a run.json without them."""
    layout = RunLayout(run)
    info = runlog.read_json(layout.run_json) if storage.exists(layout.run_json) else {}
    return {t: float(rec.get("weight", 1.0)) for t, rec in (info.get("tasks") or {}).items()}


def score_summary(records: Sequence[Mapping]) -> dict[str, float]:
    """Figures for the UI's metrics panel: how many were scored, best and mean fitness."""
    fits = [r["fitness"] for r in records if r.get("fitness") is not None and not math.isnan(r["fitness"])]
    return {
        "scored": float(len(fits)),
        "best_fitness": max(fits) if fits else 0.0,
        "mean_fitness": sum(fits) / len(fits) if fits else 0.0,
    }


def fitness_gamma(config: RunConfig) -> float:
    """γ of the run's fitness while it searches (:func:`saemerge.core.fitness.search_gamma`): the
    run's ``gamma``; 0 for PSO, whose fitness is the macro accuracy (SAE-SPEC §7)."""
    from saemerge.core.fitness import search_gamma

    return search_gamma(config.search, config.gamma)


def evaluate_on_sample(run: str, generation: int, stage: str, candidates: Sequence[Mapping], sample: int) -> list[dict]:
    """What an evaluate step does: draw generation `sample`'s optimisation set (or read it back),
    then score `candidates` on it with lm-eval, with the run's γ, device, dtype and batch size.

    The sample is drawn here rather than by a step of its own (one task less per generation
    in the Workflow); drawing is deterministic and skipped when the sample is there already.
    """
    from saemerge.compute import measured
    from saemerge.steps.settings import run_config

    config = run_config(run)
    sample_uri = sample_optimisation_set(run, sample, config.data_uri, config.opt_sizes, config.seed)
    with measured(run, "evaluate", f"gen {generation} {stage}"):
        return evaluate_candidates(
            run,
            generation,
            stage,
            candidates,
            sample_uri,
            gamma=fitness_gamma(config),
            evaluator=lm_eval_evaluator(config.eval_device, config.eval_dtype, config.eval_batch_size, run=run),
        )
