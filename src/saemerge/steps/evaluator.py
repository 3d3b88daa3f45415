"""The evaluator seam of the scoring steps: what a step needs of an evaluator, and the production one.

Steps receive a factory (:data:`EvaluatorFactory`) and never build lm-eval themselves, so tests
can give them the scripted model. :func:`lm_eval_evaluator` is lm-eval on the run's task set,
its device decided before any model is fetched.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

from saemerge.evaluate.results import EvalResult
from saemerge.steps.settings import code_opt_in

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
