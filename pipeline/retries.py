"""How each kind of step is retried on a cluster, and for how long Argo keeps retrying it.

The compiled retry policy (``set_retry``) becomes an Argo ``retryStrategy`` with a ``limit`` and
a ``backoff`` (``getTaskRetryStrategyFromInput`` in
``backend/src/v2/compiler/argocompiler/container.go``, KFP 2.14.0 to 2.17.0) and no
``retryPolicy``, so Argo's default applies: ``OnFailure``, which retries a container that
failed, not a pod that was deleted or preempted (that node ends in ``Error``). The upstream
change that retries those too (kubeflow/pipelines b37b1805aa) is in no release up to 2.17.0;
a run whose pod was lost is resubmitted with ``saemerge submit --resume``.

Argo stops retrying once the first attempt's start plus ``backoff.maxDuration`` has passed
(``backoff_max_duration``; kfp's default is 3600 s). A step that runs longer than that gets no
retry at all, so each kind's maximum is sized from the step's expected run at the model size
the pipeline is compiled for (:func:`expected_run_s`): every attempt may take that long, plus
the backoffs between them.

Expected run of one attempt, for P parameters and B = 2·P bytes (a bf16 checkpoint); rates
chosen low (a slow S3 link, a mid-range GPU) so the estimate errs long:

==========  ==========================================================================
kind        seconds
==========  ==========================================================================
small       600 (headers, JSON and Parquet tables)
merge       300 + 3·B / 50 MB/s (two parents and the base read, one child written)
evaluate    1,800 + 8 × (B / 50 MB/s + 150 s per 10⁹ parameters): 8 candidates
final       3,600 + 12 × (B / 50 MB/s + 600 s per 10⁹ parameters): best, experts, base,
            baselines on the test sets
==========  ==========================================================================

At 7B that is 10 min, 19 min, 3.5 h and 16 h; the maxima (3 attempts and their backoffs,
rounded up to whole hours) 1 h, 1 h, 11 h and 48 h. A maximum only bounds retrying; ``limit`` bounds the
number of attempts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from saemerge.pipeline.resources import parameter_count

RETRY_KINDS = ("small", "merge", "evaluate", "final")
_LOAD_RATE = 50e6  # bytes/s: a checkpoint downloaded and loaded
HOUR = 3600


@dataclass(frozen=True)
class RetryPlan:
    """One kind's retry policy: ``set_retry``'s arguments."""

    retries: int
    backoff_s: int
    factor: float
    max_duration_s: int

    def apply(self, task):
        return task.set_retry(
            num_retries=self.retries,
            backoff_duration=f"{self.backoff_s}s",
            backoff_factor=self.factor,
            backoff_max_duration=f"{self.max_duration_s}s",
        )


def expected_run_s(kind: str, model_size: str) -> int:
    """One attempt's expected run in seconds (the table of the module doc).

    Raises:
        ValueError: an unknown kind or model size.
    """
    p = parameter_count(model_size)
    load = 2 * p / _LOAD_RATE
    billions = p / 1e9
    seconds = {
        "small": lambda: 600.0,
        "merge": lambda: 300 + 3 * load,
        "evaluate": lambda: 1800 + 8 * (load + 150 * billions),
        "final": lambda: 3600 + 12 * (load + 600 * billions),
    }
    if kind not in seconds:
        raise ValueError(f"unknown retry kind {kind!r}; expected one of {', '.join(RETRY_KINDS)}")
    return math.ceil(seconds[kind]())


def retry_plan(kind: str, model_size: str, retries: int) -> RetryPlan:
    """The retry policy of `kind`: `retries` retries, backoff 30 s (GPU steps 60 s) doubling, and
    a maximum that lets every attempt run its expected time (:func:`expected_run_s`), rounded up
    to whole hours."""
    backoff = 60 if kind in ("evaluate", "final") else 30
    waits = sum(backoff * 2**i for i in range(retries))
    needed = (retries + 1) * expected_run_s(kind, model_size) + waits
    # Whole hours: the value is copied into every node of the run's Workflow, and few distinct
    # values compress better there (saemerge.pipeline.workflow_size).
    return RetryPlan(retries, backoff, 2.0, HOUR * math.ceil(needed / HOUR))
