"""The run layout in object storage (DESIGN.md): every path of a run, and its whole records.

```
RUN/                                   a local path or s3://bucket/prefix/RUN_ID
  run.json                             config, versions, seed, created
  lease.json                           which process drives the run now (pid, host, heartbeat)
  inputs/<identity>.json               each expert and the base as read: URI, kind, files, size
  models/<content-hash>/               checkpoints, manifest.json written last
  velocities/<content-hash>/           PSO particles' velocities (float32 checkpoints)
  recipes/<recipe-key>.json            recipe -> content hash, so a retried step reuses its model
  samples/gen-XX/<task>.jsonl          the optimisation set drawn for generation XX
  cache/scores/<content-hash>.parquet  every per-example score of a model
  init/ offspring.parquet              the initial sparse variants with their scores
  gen-XX/ population.parquet           the archive after generation XX (POPULATION_SCHEMA)
          offspring.parquet            this generation's offspring, accepted or not, and why
          scores-<stage>.parquet       per-example results of the generation's evaluations
                                       (stage: archive, offspring; init/: init)
          metrics.json                 the generation's summary (GEN_METRICS keys)
          swarm.parquet                PSO: each particle's position, velocity and bests
          handoff/<name>-<digest>.parquet  what a step hands the next ones, passed by URI
                                       (records, pairs, mating orders; init/handoff/ too)
  compute/<kind>/<time>-<id>.json       one record per step attempt: seconds, CPU seconds, peak RSS
  attribution/<content-hash>.json      a model's attribution to the experts (saemerge.run.attribution)
  final/ results.parquet, scores.parquet, best.json, compute.json, report.md, report.html, *.png
         test-sample/<task>.jsonl      the test items drawn for this run (every method is scored on them)
```

The full tree, with each file's columns, is in docs/DESIGN.md ("Run layout").

The tables' schemas and their I/O are :mod:`saemerge.run.tables`; ``saemerge inspect``'s text is
:mod:`saemerge.run.inspect`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from saemerge import storage
from saemerge.errors import SaeMergeError
from saemerge.run.tables import (
    SCORE_PREFIX,
    read_json,
    read_table,
    results_table,
    rows_to_table,
    table_to_rows,
    write_table,
)


def gen_name(generation: int | str) -> str:
    """The directory name of a generation: ``gen-XX``, or ``init`` for the initial population (-1)."""
    if isinstance(generation, str):
        return generation
    return "init" if int(generation) < 0 else f"gen-{int(generation):02d}"


def member_id(content_hash: str) -> str:
    return "m-" + content_hash[:12]


# A run id names a directory locally (WORKDIR/runs/ID) and a prefix in S3 (BUCKET/runs/ID): one
# path segment of letters, digits, '.', '_' and '-', starting with a letter or digit (so never
# '..', never '/'), short enough for any file system.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(run_id: str, flag: str = "--run-id") -> str:
    """The run id, or a one-line error naming it: it must be one safe path segment."""
    if not _RUN_ID.fullmatch(run_id or "") or ".." in run_id:
        raise SaeMergeError(
            f"{flag} {run_id!r}: a run id is 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it names a directory and an S3 prefix)"
        )
    return run_id


# A stage's score table: scores-<stage>.parquet, or scores-<stage>.attempt-N.parquet (RunLayout.new_scores).
_SCORES_NAME = re.compile(r"scores-(?P<stage>[^.]+)(?:\.attempt-(?P<attempt>\d+))?\.parquet")


@dataclass(frozen=True)
class RunLayout:
    """Every path of a run, in one place (the tree above). Nothing else builds a run path.

    Args:
        root: the run's URI (``s3://bucket/prefix/RUN_ID`` or a local directory).
    """

    root: str

    def _at(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    @property
    def run_json(self) -> str:
        return self._at("run.json")

    @property
    def lease(self) -> str:
        """Who drives the run now (:mod:`saemerge.run.lease`)."""
        return self._at("lease.json")

    def input_record(self, identity: str) -> str:
        """What the run read as an input (expert or base): URI, kind, files, size."""
        return self._at("inputs", f"{identity}.json")

    def model(self, content_hash: str) -> str:
        return self._at("models", content_hash)

    def velocity(self, content_hash: str) -> str:
        """A PSO particle's velocity (SAE-SPEC §7), content-addressed like a model."""
        return self._at("velocities", content_hash)

    def recipe(self, key: str) -> str:
        return self._at("recipes", f"{key}.json")

    def attribution(self, digest: str) -> str:
        """A model's attribution to the run's experts (:mod:`saemerge.run.attribution`), by content hash."""
        return self._at("attribution", f"{digest}.json")

    def sample(self, generation: int) -> str:
        """The optimisation set drawn for `generation` (a directory of ``<task>.jsonl``)."""
        return self._at("samples", gen_name(generation))

    def score_cache(self, content_hash: str) -> str:
        return self._at("cache", "scores", f"{content_hash}.parquet")

    def gen_dir(self, generation: int | str) -> str:
        return self._at(gen_name(generation))

    def population(self, generation: int | str, name: str = "population") -> str:
        """``population.parquet`` (the archive after the generation) or ``offspring.parquet``."""
        return self._at(gen_name(generation), f"{name}.parquet")

    def handoff(self, generation: int | str, name: str) -> str:
        """What a step hands the next ones (records, a pair, a mating order), passed by this URI:
        ``<gen>/handoff/<name>.parquet``, the name ending in the content's digest
        (:mod:`saemerge.steps.handoff`)."""
        return self._at(gen_name(generation), "handoff", f"{name}.parquet")

    def new_scores(self, generation: int | str, stage: str) -> str:
        """Where this attempt of a stage writes its per-example table: ``scores-<stage>.parquet``,
        or ``scores-<stage>.attempt-N.parquet`` when an earlier attempt wrote one (its ``fresh``
        flags record what that attempt evaluated; a rerun finds those rows cached)."""
        uri, attempt = self.scores(generation, stage), 1
        while storage.exists(uri):
            attempt += 1
            uri = self._at(gen_name(generation), f"scores-{stage}.attempt-{attempt}.parquet")
        return uri

    def scores(self, generation: int | str, stage: str) -> str:
        return self._at(gen_name(generation), f"scores-{stage}.parquet")

    @staticmethod
    def scores_attempt(name: str) -> tuple[str, int] | None:
        """(stage, attempt) of a score table's file name (:meth:`new_scores`), else None."""
        match = _SCORES_NAME.fullmatch(name)
        return (match["stage"], int(match["attempt"] or 1)) if match else None

    def swarm(self, generation: int | str) -> str:
        """PSO: the swarm after the step recorded as `generation` (``init``: step 0)."""
        return self._at(gen_name(generation), "swarm.parquet")

    def metrics(self, generation: int | str) -> str:
        return self._at(gen_name(generation), "metrics.json")

    @property
    def compute_dir(self) -> str:
        return self._at("compute")

    def compute_record(self, kind: str, name: str) -> str:
        """One step attempt's timings and memory (:mod:`saemerge.run.compute`); never overwritten."""
        return self._at("compute", kind, f"{name}.json")

    @property
    def final_dir(self) -> str:
        return self._at("final")

    def final(self, name: str) -> str:
        """A file under ``final/``: results.parquet, scores.parquet, best.json, report.md, plots."""
        return self._at("final", name)

    @property
    def test_sample(self) -> str:
        return self._at("final", "test-sample")

    def generations(self) -> list[int]:
        """Generations whose population table exists, in order."""
        found = set()
        for uri in storage.list_uris(self.root):
            parts = uri.rstrip("/").split("/")
            for i, part in enumerate(parts[:-1]):
                if part.startswith("gen-") and part[4:].isdigit() and parts[i + 1] == "population.parquet":
                    found.add(int(part[4:]))
        return sorted(found)

    def stages(self) -> list[str]:
        """``init`` and every recorded generation's directory name, in order."""
        return ["init", *[gen_name(g) for g in self.generations()]]

    # -- whole records ----------------------------------------------------------------------
    def read_config(self) -> dict:
        """The run's recorded configuration (``run.json``'s "config")."""
        return read_json(self.run_json)["config"]

    def write_population(self, generation: int | str, rows: Sequence[Mapping], name: str = "population") -> str:
        uri = self.population(generation, name)
        write_table(uri, rows_to_table(rows))
        return uri

    def read_population(self, generation: int | str, name: str = "population") -> list[dict]:
        return table_to_rows(read_table(self.population(generation, name)))

    def write_results(self, rows: Sequence[Mapping]) -> None:
        """``final/results.parquet``: one row per method, per-task accuracy and the macro average."""
        write_table(self.final("results.parquet"), results_table(rows))

    def read_results(self) -> list[dict]:
        """The rows of ``final/results.parquet`` with per-task scores under "scores"."""
        return [
            {
                "method": r["method"],
                "id": r["id"],
                "uri": r["uri"],
                "sparsity": r["sparsity"],
                "macro": r["macro"],
                "scores": {k[len(SCORE_PREFIX) :]: v for k, v in r.items() if k.startswith(SCORE_PREFIX)},
            }
            for r in read_table(self.final("results.parquet")).to_pylist()
        ]
