"""Build every task of a run without a model, on a few rows of each split it reads.

Preflight's task check (:func:`saemerge.preflight.check_run_tasks`): each task's overlay is
loaded by lm-eval as the evaluator would load it, its (metric, filter) checked
(:func:`saemerge.evaluate.evaluator.check_scored`), and its requests built, which renders every
prompt (in the sandbox, :func:`saemerge.evaluate.tasksafety.sandbox_templates`) and checks the
fields the templates read. A bad YAML, an unknown metric or filter, a missing field or an
unsafe template fails here in one line naming the task and its file, before the search.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from saemerge.errors import SaeMergeError
from saemerge.evaluate.taskfns import SHOTS_FIELD
from saemerge.evaluate.taskset import TaskSet
from saemerge.evaluate.taskspec import TASKS_DIR, TaskSpec, check_rows


def _where(spec: TaskSpec) -> str:
    return f"task {spec.name} ({spec.yaml or spec.sidecar})"


def build_tasks(tasks: TaskSet, rows: Mapping[str, Sequence[dict]], shot_rows: Mapping[str, Sequence[dict]]) -> None:
    """Build each task on `rows` (a few docs of each split the run reads, by task).

    Args:
        tasks: the run's task set.
        rows: task -> docs (each with its ``id``); checked for the sidecar's required fields.
        shot_rows: task -> docs of its shot split (a few), attached as each doc's shots.

    Raises:
        SaeMergeError: one line naming the task and its file.
    """
    from jinja2.exceptions import SecurityError, TemplateError
    from lm_eval.tasks import TaskManager

    from saemerge.evaluate.evaluator import check_scored, quiet_lm_eval
    from saemerge.evaluate.overlay import write_overlays
    from saemerge.evaluate.tasksafety import sandbox_templates

    sandbox_templates()
    quiet_lm_eval()
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    with tempfile.TemporaryDirectory(prefix="saemerge-taskcheck-") as tmp:
        for spec in tasks:
            docs = check_rows(spec, [dict(d) for d in rows[spec.name]], f"data of task {spec.name}")
            pool = [dict(d) for d in shot_rows.get(spec.name, ())]
            if spec.shots:
                docs = [{**d, SHOTS_FIELD: [p for p in pool if p["id"] != d["id"]][: spec.shots]} for d in docs]
            try:
                lm_tasks = write_overlays(spec, docs, Path(tmp) / spec.name, yaml_for=tasks.yaml_for)
                for lm in lm_tasks:
                    task = manager.load([str(lm.yaml)])["tasks"].get(lm.name)
                    if task is None:
                        raise SaeMergeError(f"{_where(spec)}: lm-eval built no task {lm.name}")
                    check_scored(spec, lm.name, task)
                    task.build_all_requests()
                    if not task.instances:
                        raise SaeMergeError(f"{_where(spec)}: no requests built from {len(docs)} docs")
            except SaeMergeError:
                raise
            except SecurityError as exc:
                raise SaeMergeError(f"{_where(spec)}: a template reaches outside the sandbox ({exc})") from None
            except (TemplateError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise SaeMergeError(f"{_where(spec)}: does not build ({type(exc).__name__}: {first})") from None
            except (ImportError, FileNotFoundError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else ""
                raise SaeMergeError(f"{_where(spec)}: does not load ({type(exc).__name__}: {first})") from None
