"""A run's progress as its own records tell it: generation metrics and the final results.

KFP's run details are no record of progress for long runs: Argo gzips a Workflow's
``status.nodes`` once the object passes 1 MiB, and the KFP API server builds a run's
``task_details`` from the uncompressed nodes only, so a 12-generation run's task list goes
empty partway through. The run's records in its ``run_uri`` (:class:`~saemerge.run.layout.RunLayout`:
``init/metrics.json``, ``gen-XX/metrics.json``, ``final/results.parquet``) are written by the
steps themselves and have no such limit. ``saemerge submit --wait`` polls them
(:class:`RunProgress`) and ``saemerge inspect`` prints :func:`progress_line`.
"""

from __future__ import annotations

import logging

from saemerge import storage
from saemerge.run.layout import RunLayout, gen_name
from saemerge.run.metrics import metrics_line
from saemerge.run.tables import read_json

log = logging.getLogger(__name__)


class RunProgress:
    """Follows one run's records: each :meth:`poll` returns a line per record new since the last.

    Generations are checked in order (``init``, ``gen-00``, ...), one ``exists`` per poll for
    the next one not yet seen, so a poll costs a few requests however large the run is.

    Args:
        run_uri: the run's URI (``s3://...`` or a local directory), with the KFP run id in it.
        generations: the generations the run will record (from its ``run.json`` once written).
    """

    def __init__(self, run_uri: str, generations: int | None = None):
        self.layout = RunLayout(run_uri)
        self.generations = generations
        self.next_generation = -1  # -1: the initial population
        self.final_seen = False
        self.broken: str | None = None  # why the records cannot be read (reported once)

    def poll(self) -> list[str]:
        if self.broken:
            return []
        try:
            return self._poll()
        except Exception as exc:  # no S3 settings here, an unreachable endpoint, a refused key
            self.broken = f"{type(exc).__name__}: {str(exc)[:200]}"
            return [f"progress: cannot read the run's records at {self.layout.root} ({self.broken}); KFP's state only"]

    def _poll(self) -> list[str]:
        lines = []
        if self.generations is None and storage.exists(self.layout.run_json):
            self.generations = self.layout.read_config().get("steps")
        while not self.final_seen:
            uri = self.layout.metrics(self.next_generation)
            if not storage.exists(uri):
                break
            lines.append(f"progress: {self._label(self.next_generation)}: {metrics_line(read_json(uri))}")
            self.next_generation += 1
        if not self.final_seen and storage.exists(self.layout.final("results.parquet")):
            self.final_seen = True
            lines.append(f"progress: final evaluation written: {self.layout.final('results.parquet')}")
        return lines

    def _label(self, generation: int) -> str:
        if generation < 0:
            return "initial population"
        total = f"/{self.generations}" if self.generations else ""
        return f"generation {generation + 1}{total} ({gen_name(generation)})"

    @property
    def done_generations(self) -> int:
        return max(0, self.next_generation)


def progress_line(run_uri: str) -> str:
    """One line for ``saemerge inspect``: generations recorded of those configured, and the final step."""
    progress = RunProgress(run_uri)
    progress.poll()
    if progress.broken:
        return f"progress: unknown ({progress.broken})"
    total = f" of {progress.generations}" if progress.generations else ""
    final = "written" if progress.final_seen else "not yet"
    started = "recorded" if progress.next_generation >= 0 else "not yet recorded"
    return (
        f"progress (from the run's records): initial population {started}; "
        f"{progress.done_generations}{total} generations recorded; final results {final}"
    )
