"""The run layout in object storage (DESIGN.md), with writers and readers.

```
RUN/                                   a local path or s3://bucket/prefix/RUN_ID
  run.json                             config, versions, seed, created
  lease.json                           which process drives the run now (pid, host, heartbeat)
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
  attribution/<content-hash>.json      a model's attribution to the experts (saemerge.attribution)
  final/ results.parquet, scores.parquet, best.json, compute.json, report.md, report.html, *.png
```

Population tables hold one row per individual (POPULATION_SCHEMA, plus one float column
``score.<task>`` per task). Per-example tables have the evaluator's columns
(:data:`saemerge.evaluate.results.SCHEMA`: task, example_id, correct, answer, target), plus
``content_hash``, ``model_id`` and ``fresh`` (evaluated by that step, not taken from the cache)
in the generation tables and ``method`` in ``final/scores.parquet``. Every table is Parquet,
written whole and atomically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from saemerge import storage
from saemerge.errors import SaeMergeError

POPULATION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),  # "m-" + first 12 hex digits of the content hash
        ("content_hash", pa.string()),  # sha256 over tensor names, dtypes, shapes, bytes
        ("uri", pa.string()),  # RUN/models/<content_hash>
        ("parents", pa.list_(pa.string())),  # ids of the parents; empty for initial variants
        ("origin", pa.string()),  # "expert:<name>@<sparsity>", "base@<s>" or "sae"
        ("born", pa.int32()),  # generation that created it (-1: initial population)
        ("generation", pa.int32()),  # generation this row describes
        ("sparsity", pa.float64()),  # ρ (zero_count over prunable tensors, delta space)
        ("s_t", pa.float64()),  # sparsity target it was pruned to
        ("lambda_mean", pa.float64()),  # SAE mixing ratio summary (null unless merged)
        ("lambda_min", pa.float64()),
        ("lambda_max", pa.float64()),
        ("score", pa.float64()),  # macro-average accuracy on this generation's optimisation set
        ("fitness", pa.float64()),  # score + γ·ρ
        ("n_scored", pa.int64()),  # examples this score is over
        ("status", pa.string()),  # member | accepted | rejected | discarded
        ("reason", pa.string()),  # why an offspring was accepted or not
    ]
)
SCORE_PREFIX = "score."
GEN_METRICS = (
    "generation",
    "s_t",
    "best_fitness",
    "mean_fitness",
    "best_score",
    "mean_sparsity",
    "accepted",
    "offspring",
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
        """Who drives the run now (:mod:`saemerge.lease`)."""
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
        """A model's attribution to the run's experts (:mod:`saemerge.attribution`), by content hash."""
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
        """One step attempt's timings and memory (:mod:`saemerge.compute`); never overwritten."""
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


def results_table(rows: Sequence[Mapping]) -> pa.Table:
    tasks = sorted({t for r in rows for t in r["scores"]})
    cols = {
        "method": [r["method"] for r in rows],
        "id": [r["id"] for r in rows],
        "uri": [r["uri"] for r in rows],
        "sparsity": pa.array([r.get("sparsity") for r in rows], pa.float64()),
        **{f"{SCORE_PREFIX}{t}": pa.array([r["scores"].get(t) for r in rows], pa.float64()) for t in tasks},
        "macro": pa.array([r["macro"] for r in rows], pa.float64()),
    }
    return pa.table(cols)


# -- tables ----------------------------------------------------------------------------
def rows_to_table(rows: Sequence[Mapping], schema: pa.Schema = POPULATION_SCHEMA) -> pa.Table:
    """Rows (dicts; per-task scores under "scores") -> a table with schema + score.<task> columns."""
    tasks = sorted({t for r in rows for t in (r.get("scores") or {})})
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    if "parents" in columns:
        columns["parents"] = [list(p or []) for p in columns["parents"]]
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    fields = list(schema)
    for task in tasks:
        arrays.append(pa.array([(r.get("scores") or {}).get(task) for r in rows], type=pa.float64()))
        fields.append(pa.field(SCORE_PREFIX + task, pa.float64()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def table_to_rows(table: pa.Table) -> list[dict]:
    """The inverse of :func:`rows_to_table`."""
    rows = []
    for rec in table.to_pylist():
        scores = {k[len(SCORE_PREFIX) :]: rec.pop(k) for k in list(rec) if k.startswith(SCORE_PREFIX)}
        rec["scores"] = {k: v for k, v in scores.items() if v is not None}
        rows.append(rec)
    return rows


# Tables are small: read them synchronously. With pq.read_table (the dataset API) Arrow's
# background threads can drop the last reference to the Python bytes during interpreter
# shutdown, which aborts the process ("terminate called without an active exception").
def write_table(uri: str, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    storage.write_bytes(uri, sink.getvalue().to_pybytes())


def read_table(uri: str) -> pa.Table:
    return table_from_bytes(storage.read_bytes(uri))


def table_from_bytes(data: bytes) -> pa.Table:
    """A Parquet file's table (pyarrow's error when the bytes are not a readable Parquet file)."""
    with pq.ParquetFile(pa.BufferReader(data)) as f:
        return f.read(use_threads=False)


def write_json(uri: str, obj) -> None:
    storage.write_bytes(uri, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(uri: str):
    return json.loads(storage.read_bytes(uri))


# -- inspection -------------------------------------------------------------------------
def all_individuals(layout: RunLayout) -> dict[str, dict]:
    """Every individual of the run by id (initial variants and offspring), latest record wins."""
    found: dict[str, dict] = {}
    for where in layout.stages():
        for name in ("offspring", "population"):
            uri = layout.population(where, name)
            if storage.exists(uri):
                for row in table_to_rows(read_table(uri)):
                    found.setdefault(row["id"], row)
    return found


def lineage(layout: RunLayout, member: str, people: Mapping[str, dict] | None = None) -> list[str]:
    """Lines of an indented tree from `member` back to the initial variants."""
    people = people if people is not None else all_individuals(layout)
    lines: list[str] = []

    def walk(mid: str, depth: int, seen: frozenset) -> None:
        rec = people.get(mid)
        if rec is None:
            lines.append("  " * depth + f"{mid} (not recorded)")
            return
        born = "initial" if rec["born"] < 0 else f"gen {rec['born']}"
        score = "" if rec.get("score") is None else f" score {rec['score']:.3f}"
        lines.append("  " * depth + f"{mid}  {rec['origin']}  ({born}, ρ {rec['sparsity']:.3f}{score})")
        if mid in seen:
            return
        for parent in rec.get("parents") or []:
            walk(parent, depth + 1, seen | {mid})

    walk(member, 0, frozenset())
    return lines


def generation_metrics(layout: RunLayout) -> list[dict]:
    """Each recorded generation's ``metrics.json`` (initial population first)."""
    return [read_json(uri) for uri in map(layout.metrics, layout.stages()) if storage.exists(uri)]


def describe_run(run: str) -> str:
    """`saemerge inspect`: one row per generation, the final pick's attribution to the experts
    (:mod:`saemerge.attribution`) and the lineage of the best model."""
    layout = RunLayout(run)
    if not storage.exists(layout.run_json):
        from saemerge.errors import SaeMergeError

        raise SaeMergeError(f"{run}: no run.json there (not a saemerge run)")
    rows = generation_metrics(layout)
    tasks = sorted({k[5:] for m in rows for k in m if k.startswith("best.")})
    head = f"{'gen':>4} {'s_t':>7} {'best F':>8} {'mean F':>8}" + "".join(f" {t[:22]:>22}" for t in tasks)
    lines = [head + f" {'accepted':>9} {'mean ρ':>7}"]
    for m in rows:
        gen = "init" if m["generation"] < 0 else str(m["generation"])
        lines.append(
            f"{gen:>4} {m['s_t']:>7.4f} {m['best_fitness']:>8.4f} {m['mean_fitness']:>8.4f}"
            + "".join(f" {m.get('best.' + t, float('nan')):>22.3f}" for t in tasks)
            + f" {str(m['accepted']) + '/' + str(m['offspring']):>9} {m['mean_sparsity']:>7.3f}"
        )
    generations = layout.generations()
    if storage.exists(layout.final("compute.json")):
        from saemerge.compute import summary_lines

        lines += ["", "compute:", *["  " + line for line in summary_lines(read_json(layout.final("compute.json")))]]
    if storage.exists(layout.final("best.json")):
        from saemerge.attribution import describe, pick_attribution

        best = read_json(layout.final("best.json"))["id"]
        title = "best model (final)"
        attribution = pick_attribution(layout)
        if attribution is not None:
            lines += ["", f"attribution of the best model {best} to the experts:", "  " + describe(attribution)]
    elif rows and generations:
        pop = layout.read_population(generations[-1])
        best = max(pop, key=lambda r: (r["fitness"], r["id"]))["id"]
        title = f"best model (generation {generations[-1]})"
    else:
        return "\n".join(lines)
    lines += ["", f"lineage of the {title}:"] + lineage(layout, best)
    return "\n".join(lines)
