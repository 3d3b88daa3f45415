"""Score checkpoints on JSONL samples with lm-eval, one row per example.

:class:`Evaluator` is built once per process: it indexes the shipped task YAMLs once
(``include_defaults=False``, so lm-eval's own ~10k configs are never scanned) and keeps one
model loaded, swapping each checkpoint's weights into it (:mod:`saemerge.evaluate.hf`).

:meth:`Evaluator.score` runs lm-eval's ``evaluate`` with ``log_samples=True`` and maps every
logged doc back to its ``id``. Earlier rows passed as ``already_scored`` are reused, not re-run
(SAE-SPEC §4: scores are cached per model content hash and example id; the caller keys the
cache by model).

A step scores many models on one sample, so the lm-eval task objects (an overlay YAML and a
``datasets`` table per task) are built once per sample, not once per model
(:class:`_TaskSet`): later calls on the same docs reuse them and pass lm-eval the indices of
the docs still to be scored (``evaluate(samples=...)``). Prompts, requests, filters and
metrics are lm-eval's own either way, so the per-example answers are the same.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from saemerge.errors import SaeMergeError, unknown_name
from saemerge.evaluate.overlay import LmTask, docs_digest, write_overlays
from saemerge.evaluate.results import EvalResult, ExampleResult, index_results
from saemerge.evaluate.tasksafety import check_task_safety, sandbox_templates
from saemerge.evaluate.taskset import TaskSet, resolve_tasks
from saemerge.evaluate.taskspec import TASKS_DIR, TaskSpec, check_rows, read_jsonl

if TYPE_CHECKING:
    from lm_eval.api.model import LM

log = logging.getLogger(__name__)

# lm-eval model classes added by register_model (name -> class), looked up before lm-eval's own.
_EXTRA_MODELS: dict[str, type[LM]] = {}

Samples = Mapping[str, str | Path | Iterable[dict]]


def quiet_lm_eval() -> None:
    """Keep lm-eval, datasets and transformers to warnings unless debugging; ours stay at INFO."""
    import datasets
    import transformers

    level = logging.DEBUG if logging.getLogger("saemerge").isEnabledFor(logging.DEBUG) else logging.ERROR
    for name in ("lm_eval", "datasets", "accelerate"):
        logging.getLogger(name).setLevel(level)
    transformers.logging.set_verbosity(max(level, logging.WARNING))
    datasets.disable_progress_bars()
    # lm-eval shows a bar for building prompts (fast, and one per task: noise); the model's
    # bars for the long request loops stay.
    import lm_eval.api.task as lm_task

    quiet = functools.partial(tqdm, disable=True)
    if getattr(lm_task, "tqdm", None) is tqdm:
        lm_task.tqdm = quiet


def register_model(name: str, cls: type[LM]) -> None:
    """Make an lm-eval model class available as ``Evaluator(model=name)``.

    For models lm-eval does not ship, e.g. the scripted model the tests score with. Called
    explicitly by whoever needs the model; nothing registers itself on import.

    Args:
        name: the name to pass as ``model``; not ``"hf"``, which the evaluator runs itself.
        cls: a subclass of ``lm_eval.api.model.LM``; it is built per checkpoint with
            ``cls.create_from_arg_obj({"pretrained": model_dir, **model_args}, ...)``.

    Raises:
        SaeMergeError: ``name`` is ``"hf"`` or already registered to another class.
    """
    if name == "hf" or _EXTRA_MODELS.get(name, cls) is not cls:
        raise SaeMergeError(f"lm-eval model {name!r} is already registered")
    _EXTRA_MODELS[name] = cls


def _lm_eval_model(name: str, model_dir: Path, model_args: dict, batch_size, device: str):
    cls = _EXTRA_MODELS.get(name)
    if cls is None:
        import lm_eval.models  # noqa: F401  (fills lm-eval's registry)
        from lm_eval.api.registry import get_model, model_registry

        if name not in model_registry:
            raise unknown_name("lm-eval model", name, [*model_registry.keys(), *_EXTRA_MODELS])
        cls = get_model(name)
    return cls.create_from_arg_obj(
        {"pretrained": str(model_dir), **model_args}, {"batch_size": batch_size, "device": device}
    )


def _target_text(target: Any, choices: list[str] | None) -> str:
    if choices is not None and isinstance(target, int):
        return choices[target].strip()
    text = str(target)
    # GSM8K-style gold: the number after the last "#### ", as exact_match compares it
    return text.rsplit("#### ", 1)[-1].strip() if "#### " in text else text.strip()


def _row(spec: TaskSpec, sample: dict, choices: list[str] | None) -> ExampleResult:
    """One logged sample of the spec's filter as a row: ``score`` is its (metric) value."""
    metric = spec.metric
    if choices is not None:  # multiple choice: the highest (length-normalised for acc_norm) log-likelihood
        lls = [r[0] for r in sample["filtered_resps"]]
        if metric == "acc_norm":
            lls = [ll / max(len(c), 1) for ll, c in zip(lls, choices)]
        answer = choices[max(range(len(lls)), key=lls.__getitem__)].strip()
    else:
        resp = sample["filtered_resps"][0]
        answer = str(resp[0] if isinstance(resp, (list, tuple)) and resp else resp)
    value = sample[metric]
    score = float(value[0] if isinstance(value, (list, tuple)) else value)
    return ExampleResult(
        task=spec.name,
        example_id=str(sample["doc"]["id"]),
        correct=score == 1.0,
        answer=answer,
        target=_target_text(sample["target"], choices),
        score=score,
    )


def check_scored(spec: TaskSpec, name: str, task_obj: Any) -> None:
    """The spec's (metric, filter) is one the built task has and a per-example mean; one line if not.

    Raises:
        SaeMergeError: naming the task, its YAML and the metric or filter.
    """
    from lm_eval.api.metrics import mean

    where = f"task {spec.name} ({spec.sidecar or spec.yaml})"
    aggs = task_obj.aggregation()
    if spec.metric not in aggs:
        raise unknown_name(f"metric in {where}:", spec.metric, aggs)
    if aggs[spec.metric] is not mean:
        agg = getattr(aggs[spec.metric], "__name__", str(aggs[spec.metric]))
        raise SaeMergeError(
            f"{where}: metric {spec.metric} aggregates by {agg}, not a per-example mean; saemerge scores "
            "examples one by one (choose acc, acc_norm, exact_match, ...)"
        )
    filters = [f.name for f in getattr(task_obj, "_filters", [])] or ["none"]
    if spec.filter not in filters:
        raise unknown_name(f"filter in {where}:", spec.filter, filters)


@dataclass
class _TaskSet:
    """lm-eval task objects built for one set of docs, reused for every model scored on them.

    Attributes:
        key: identifies the docs (and the generation length) the tasks were built for.
        scratch: the overlay YAMLs, JSONL files and ``datasets`` cache of these tasks.
        lm_tasks: the lm-eval tasks (one per ``split_by`` value of a task).
        loaded: what ``TaskManager.load`` returned for them.
        where: (task, example id) -> (lm-eval task name, index among that task's docs).
        sizes: lm-eval task name -> number of docs.
    """

    key: str
    scratch: Path
    lm_tasks: list[LmTask]
    loaded: Mapping[str, Any]
    where: dict[tuple[str, str], tuple[str, int]]
    sizes: dict[str, int]


class Evaluator:
    """Scores checkpoints on the given tasks.

    Args:
        tasks: the run's task set (:func:`saemerge.evaluate.taskset.resolve_tasks`), or task names
            (shipped or installed lm-eval tasks), a list or comma-separated.
        device: ``auto`` (CUDA when present), ``cuda``, ``cuda:N`` or ``cpu``.
        dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        batch_size: an int, or ``"auto"`` to let lm-eval probe.
        model: ``"hf"`` (one HFLM, weights swapped per checkpoint), or another lm-eval
            model name (lm-eval's own, or one added with :func:`register_model`), built per
            call with ``pretrained=<model_dir>``.
        model_args: extra constructor arguments for a non-``hf`` model.
        max_gen_toks: overrides the generation length of generate_until tasks.
        max_length: caps the context length (default: the model's).
        workdir: where scratch files go (default: a temporary directory).
        apply_chat_template, system_instruction, fewshot_as_multiturn: passed to lm-eval's
            ``evaluate``; None: the task set's (its directory's ``saemerge.yaml``). The shots stay
            those each doc carries.
        allow_task_code: let task code outside lm-eval's tasks and saemerge's own run
            (:mod:`saemerge.evaluate.tasksafety`); templates render sandboxed either way.
    """

    def __init__(
        self,
        tasks: Iterable[str] | str | TaskSet,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int | str = 16,
        model: str = "hf",
        model_args: Mapping[str, Any] | None = None,
        max_gen_toks: int | None = None,
        max_length: int | None = None,
        workdir: str | Path | None = None,
        apply_chat_template: bool | None = None,
        system_instruction: str | None = None,
        fewshot_as_multiturn: bool | None = None,
        allow_task_code: bool = False,
    ):
        from lm_eval.tasks import TaskManager

        from saemerge.evaluate.hf import HFBackend, resolve_device

        self.taskset: TaskSet = resolve_tasks(tasks)
        self.specs: list[TaskSpec] = list(self.taskset.specs)
        self.task_code = check_task_safety(self.taskset, allow_code=allow_task_code)
        sandbox_templates()
        quiet_lm_eval()
        # tasks are loaded by the path of their overlay YAML: lm-eval's own ~10k are never indexed
        self.task_manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
        self.model = model
        self.model_args = dict(model_args or {})
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.max_gen_toks = max_gen_toks
        given: dict[str, Any] = {
            "apply_chat_template": apply_chat_template,
            "system_instruction": system_instruction,
            "fewshot_as_multiturn": fewshot_as_multiturn,
        }
        self.chat = {k: self.taskset.chat.get(k) if v is None else v for k, v in given.items()}
        self.chat["system_instruction"] = self.chat["system_instruction"] or None
        if self.chat["fewshot_as_multiturn"] and not self.chat["apply_chat_template"]:
            raise SaeMergeError("fewshot_as_multiturn needs apply_chat_template")
        self.backend = HFBackend(self.device, dtype, batch_size, max_length) if model == "hf" else None
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="saemerge-eval-") if workdir is None else workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._tasks: _TaskSet | None = None
        self.task_loads = 0  # lm-eval task sets built (TaskManager.load calls), for tests and logs

    # -- public -------------------------------------------------------------------------
    def score(
        self,
        model_dir: str | Path,
        samples: Samples,
        *,
        already_scored: Iterable[ExampleResult] | EvalResult | None = None,
        limit: int | None = None,
    ) -> EvalResult:
        """Score one checkpoint on the samples.

        Args:
            model_dir: a local HF checkpoint directory (with tokenizer).
            samples: ``{task: JSONL path or list of docs}``; each doc has a unique ``id``.
            already_scored: earlier rows for this same model; examples found there (by task
                and id) are not evaluated again and their rows are returned as they were.
            limit: score only the first ``limit`` docs of each task.

        Returns:
            One row per doc of every task, in sample order.
        """
        docs = self._read_samples(samples, limit)
        cached = index_results(already_scored)
        todo = {t: [d for d in ds if (t, d["id"]) not in cached] for t, ds in docs.items()}
        n_todo = sum(map(len, todo.values()))
        n_all = sum(map(len, docs.values()))
        start = time.perf_counter()
        fresh: dict[tuple[str, str], ExampleResult] = {}
        if n_todo:
            log.info("scoring %s: %d examples (%d already scored)", model_dir, n_todo, n_all - n_todo)
            fresh = self._evaluate(Path(model_dir), docs, {t: ds for t, ds in todo.items() if ds})
        seconds = time.perf_counter() - start
        rows = [fresh.get((t, d["id"])) or cached[(t, d["id"])] for t, ds in docs.items() for d in ds]
        result = EvalResult(
            rows,
            model=str(model_dir),
            stats={
                "evaluated": n_todo,
                "cached": n_all - n_todo,
                "seconds": seconds,
                "examples_per_s": n_todo / seconds if n_todo and seconds > 0 else float("nan"),
            },
        )
        log.info(
            "%s: %s; macro %.4f (%d evaluated in %.1f s)",
            model_dir,
            ", ".join(f"{t} {a:.4f}" for t, a in result.per_task.items()),
            result.macro,
            n_todo,
            seconds,
        )
        return result

    def close(self) -> None:
        self.backend = None
        self._drop_tasks()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------
    def _read_samples(self, samples: Samples, limit: int | None) -> dict[str, list[dict]]:
        if not samples:
            raise SaeMergeError("samples: no task samples given")
        wanted = {s.name for s in self.specs}
        out = {}
        for task, src in samples.items():
            if task not in wanted:
                raise SaeMergeError(
                    f"samples: task {task} is not one of this evaluator's tasks ({', '.join(sorted(wanted))})"
                )
            rows = read_jsonl(src) if isinstance(src, (str, Path)) else [dict(d) for d in src]
            rows = check_rows(self.taskset[task], rows, src if isinstance(src, (str, Path)) else f"sample of {task}")
            out[task] = rows[:limit] if limit else rows
        return out

    def _lm_for(self, model_dir: Path):
        if self.backend is not None:
            return self.backend.lm_for(model_dir)
        return _lm_eval_model(self.model, model_dir, self.model_args, self.batch_size, self.device)

    def _task_set(self, docs: dict[str, list[dict]]) -> _TaskSet:
        """The lm-eval tasks for exactly these docs: built on the first call, then reused."""
        h = hashlib.sha256(f"max_gen_toks={self.max_gen_toks}".encode())
        for task, ds in docs.items():
            h.update(f"{task}:{docs_digest(ds)};".encode())
        key = h.hexdigest()[:16]
        if self._tasks is not None and self._tasks.key == key:
            return self._tasks
        self._drop_tasks()
        start = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix=f"tasks-{key}-", dir=self.workdir))
        lm_tasks: list[LmTask] = []
        for task, ds in docs.items():
            lm_tasks += write_overlays(
                self.taskset[task], ds, scratch, max_gen_toks=self.max_gen_toks, yaml_for=self.taskset.yaml_for
            )
        try:
            loaded = self.task_manager.load([str(t.yaml) for t in lm_tasks])
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        self.task_loads += 1
        where, sizes = {}, {}
        for t in lm_tasks:
            check_scored(self.taskset[t.task], t.name, loaded["tasks"][t.name])
            ids = [str(d["id"]) for d in loaded["tasks"][t.name].eval_docs]
            sizes[t.name] = len(ids)
            where.update({(t.task, i): (t.name, n) for n, i in enumerate(ids)})
        self._tasks = _TaskSet(key, scratch, lm_tasks, loaded, where, sizes)
        log.info(
            "built %d lm-eval tasks for %d examples in %.1f s", len(lm_tasks), len(where), time.perf_counter() - start
        )
        return self._tasks

    def _drop_tasks(self) -> None:
        if self._tasks is not None:
            shutil.rmtree(self._tasks.scratch, ignore_errors=True)
            self._tasks = None

    def _evaluate(
        self, model_dir: Path, docs: dict[str, list[dict]], todo: dict[str, list[dict]]
    ) -> dict[tuple[str, str], ExampleResult]:
        """Score the docs of `todo` (a subset of `docs`) with lm-eval tasks built for all of `docs`."""
        from lm_eval.evaluator import evaluate

        tasks = self._task_set(docs)
        picked: dict[str, list[int]] = defaultdict(list)
        for task, ds in todo.items():
            for d in ds:
                name, index = tasks.where[(task, str(d["id"]))]
                picked[name].append(index)
        names = [t.name for t in tasks.lm_tasks if picked[t.name]]
        # lm-eval scores every doc of a task left out of `samples`; the others only at these indices
        subset = {n: sorted(picked[n]) for n in names if len(picked[n]) < tasks.sizes[n]}
        task_objs = {n: tasks.loaded["tasks"][n] for n in names}
        lm = self._lm_for(model_dir)
        self._check_lengths(lm, task_objs)
        out = evaluate(
            lm=lm,
            task_dict={"tasks": task_objs},
            samples=subset or None,
            bootstrap_iters=0,
            log_samples=True,
            **self.chat,
        )
        rows: dict[tuple[str, str], ExampleResult] = {}
        for t in tasks.lm_tasks:
            if t.name not in task_objs:
                continue
            task_obj = task_objs[t.name]
            spec = self.taskset[t.task]
            mc = task_obj.OUTPUT_TYPE == "multiple_choice"
            for sample in out["samples"][t.name]:
                if sample.get("filter", "none") != spec.filter:
                    continue  # another filter's output of the same doc: not the scored one
                row = _row(spec, sample, task_obj.doc_to_choice(sample["doc"]) if mc else None)
                if (t.task, row.example_id) in rows:
                    raise RuntimeError(f"{t.name}: two results for example {row.example_id} under one filter")
                rows[(t.task, row.example_id)] = row
        missing = [(t, d["id"]) for t, ds in todo.items() for d in ds if (t, str(d["id"])) not in rows]
        if missing:
            raise RuntimeError(f"lm-eval returned no result for {len(missing)} examples, e.g. {missing[0]}")
        return rows

    @staticmethod
    def _check_lengths(lm, tasks: Mapping[str, Any]) -> None:
        max_length = getattr(lm, "max_length", None)
        if not isinstance(max_length, int):
            return
        for name, task in tasks.items():
            gen = (task.config.generation_kwargs or {}).get("max_gen_toks", getattr(lm, "max_gen_toks", 256))
            if task.OUTPUT_TYPE == "generate_until" and gen >= max_length:
                raise SaeMergeError(
                    f"{name}: max_gen_toks {gen} leaves no room for the prompt in the model's "
                    f"{max_length}-token context; lower it (--max-gen-toks)"
                )


__all__ = ["Evaluator", "quiet_lm_eval", "register_model"]
