"""The run's settings as a step inside the search reads them: from ``run.json``, not from its inputs.

The search's first step (``init_population``, ``pso_init``, ``m2n2_init``) takes every run
parameter, checks them all (:meth:`saemerge.config.RunConfig.from_params`, preflight) and
records the configuration in ``RUN/run.json``. The steps after it take only the run, the
generation and the handoff URIs of their records, and read the settings they need here.

Why: the Kubeflow backend copies every input value of every task into the Argo Workflow
several times (the executor input twice, the component spec, the step's signature), and the
Workflow must fit in etcd. A generation whose steps took the run's 20-odd settings each was
most of a 24-generation run's bytes.

Caching stays correct: a step's cache key is its inputs, which now always include the run
(``run_uri``) and the generation; a run's settings cannot change under the same run URI (the
init step refuses a run.json of another configuration), so a cache hit is the same work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from saemerge import runlog, storage
from saemerge.config import RunConfig, split_names
from saemerge.errors import SaeMergeError
from saemerge.runlog import RunLayout

if TYPE_CHECKING:
    from saemerge.evaluate.taskset import TaskSet


def run_config(run: str) -> RunConfig:
    """The configuration `run`'s init step recorded (``run.json``), parsed and checked once more.

    Raises:
        SaeMergeError: no run.json (a step started before its run's init step).
    """
    layout = RunLayout(run)
    if not storage.exists(layout.run_json):
        raise SaeMergeError(f"{layout.run_json}: not written (the run's init step writes it before any other step)")
    return RunConfig.from_json(layout.read_config())


def task_names(config: RunConfig) -> list[str]:
    """The run's tasks, in the order ``opt_sizes`` then ``test_sizes`` name them."""
    return list(dict.fromkeys([*config.opt_sizes, *config.test_sizes]))


@contextmanager
def run_tasks(run: str | RunConfig) -> Iterator[TaskSet]:
    """The run's task set, resolved from its ``run.json`` (or a config), for the ``with`` block.

    A ``tasks_uri`` is fetched to a local directory that lives as long as the block: the task
    objects lm-eval builds read their YAMLs by path. Without a run.json (a step called on its
    own, in tests), the shipped and installed tasks named by the caller are used instead.
    """
    from saemerge.evaluate.taskset import resolve_tasks

    config = run if isinstance(run, RunConfig) else run_config(run)
    if config.tasks_uri:
        with storage.local_input(config.tasks_uri) as task_dir:
            yield resolve_tasks(task_names(config), task_dir)
    else:
        yield resolve_tasks(task_names(config))


@contextmanager
def tasks_of(run: str, names: Sequence[str]) -> Iterator[TaskSet]:
    """The task set of `names` as `run` defines them (its ``tasks_uri``); the shipped and installed
    tasks when its run.json names no task directory (or there is none: a step called on its own)."""
    from saemerge.evaluate.taskset import TaskSet, resolve_tasks

    layout = RunLayout(run)
    tasks_uri = layout.read_config().get("tasks_uri") if storage.exists(layout.run_json) else None
    if not tasks_uri:
        yield resolve_tasks(list(names))
        return
    with storage.local_input(tasks_uri) as task_dir:
        every = resolve_tasks(list(names), task_dir)
        yield TaskSet(tuple(every[n] for n in dict.fromkeys(names)), every.user_dir)


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
    layout = RunLayout(run)
    if not storage.exists(layout.run_json):
        raise SaeMergeError(f"{layout.run_json}: not written (the run's init step writes it before any sample)")
    default = RunConfig.__dataclass_fields__["opt_splits"].default
    return split_names(layout.read_config().get("opt_splits", default))


def task_weights(run: str) -> dict[str, float]:
    """The tasks' weights as the run's init step recorded them (``run.json``'s ``tasks``);
    empty (equal weights) for a run.json without them."""
    layout = RunLayout(run)
    info = runlog.read_json(layout.run_json) if storage.exists(layout.run_json) else {}
    return {t: float(rec.get("weight", 1.0)) for t, rec in (info.get("tasks") or {}).items()}
