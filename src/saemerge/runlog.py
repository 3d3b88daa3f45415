"""The run layout in object storage (DESIGN.md), with writers and readers.

```
RUN/                                   a local path or s3://bucket/prefix/RUN_ID
  run.json                             config, versions, seed, created
  models/<content-hash>/               checkpoints, manifest.json written last
  recipes/<recipe-key>.json            recipe -> content hash, so a retried step reuses its model
  samples/gen-XX/<task>.jsonl          the optimisation set drawn for generation XX
  cache/scores/<content-hash>.parquet  every per-example score of a model
  init/ offspring.parquet              the initial sparse variants with their scores
  gen-XX/ population.parquet           the archive after generation XX (POPULATION_SCHEMA)
          offspring.parquet            this generation's offspring, accepted or not, and why
          scores-<stage>.parquet       per-example results of the generation's evaluations
                                       (stage: archive, offspring; init/: init)
          metrics.json                 the generation's summary (GEN_METRICS keys)
  final/ results.parquet, scores.parquet, best.json, report.md, report.html, *.png
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
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from saemerge import storage

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
GEN_METRICS = ("generation", "s_t", "best_fitness", "mean_fitness", "best_score", "mean_sparsity", "accepted", "offspring")


def gen_dir(run: str, generation: int | str) -> str:
    name = generation if isinstance(generation, str) else f"gen-{int(generation):02d}"
    return storage.join(run, name)


def model_uri(run: str, content_hash: str) -> str:
    return storage.join(run, "models", content_hash)


def member_id(content_hash: str) -> str:
    return "m-" + content_hash[:12]


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
        scores = {k[len(SCORE_PREFIX):]: rec.pop(k) for k in list(rec) if k.startswith(SCORE_PREFIX)}
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
    with pq.ParquetFile(pa.BufferReader(storage.read_bytes(uri))) as f:
        return f.read(use_threads=False)


def write_json(uri: str, obj) -> None:
    storage.write_bytes(uri, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(uri: str):
    return json.loads(storage.read_bytes(uri))


def write_population(run: str, generation: int | str, rows: Sequence[Mapping], name: str = "population") -> str:
    uri = storage.join(gen_dir(run, generation), f"{name}.parquet")
    write_table(uri, rows_to_table(rows))
    return uri


def read_population(run: str, generation: int | str, name: str = "population") -> list[dict]:
    return table_to_rows(read_table(storage.join(gen_dir(run, generation), f"{name}.parquet")))


def generations(run: str) -> list[int]:
    """Generations whose population table exists, in order."""
    found = set()
    for uri in storage.list_uris(run):
        parts = uri.rstrip("/").split("/")
        for i, part in enumerate(parts[:-1]):
            if part.startswith("gen-") and part[4:].isdigit() and parts[i + 1] == "population.parquet":
                found.add(int(part[4:]))
    return sorted(found)


# -- inspection -------------------------------------------------------------------------
def all_individuals(run: str) -> dict[str, dict]:
    """Every individual of the run by id (initial variants and offspring), latest record wins."""
    found: dict[str, dict] = {}
    for where in ["init", *[f"gen-{g:02d}" for g in generations(run)]]:
        for name in ("offspring", "population"):
            uri = storage.join(run, where, f"{name}.parquet")
            if storage.exists(uri):
                for row in table_to_rows(read_table(uri)):
                    found.setdefault(row["id"], row)
    return found


def lineage(run: str, member: str, people: Mapping[str, dict] | None = None) -> list[str]:
    """Lines of an indented tree from `member` back to the initial variants."""
    people = people if people is not None else all_individuals(run)
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


def describe_run(run: str) -> str:
    """`saemerge inspect`: one row per generation and the lineage of the best model."""
    if not storage.exists(storage.join(run, "run.json")):
        from saemerge.errors import SaeMergeError

        raise SaeMergeError(f"{run}: no run.json there (not a saemerge run)")
    rows = []
    for where in ["init", *[f"gen-{g:02d}" for g in generations(run)]]:
        uri = storage.join(run, where, "metrics.json")
        if storage.exists(uri):
            rows.append(read_json(uri))
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
    best_uri = storage.join(run, "final", "best.json")
    if storage.exists(best_uri):
        best = read_json(best_uri)["id"]
        title = "best model (final)"
    elif rows and generations(run):
        pop = read_population(run, generations(run)[-1])
        best = max(pop, key=lambda r: (r["fitness"], r["id"]))["id"]
        title = f"best model (generation {generations(run)[-1]})"
    else:
        return "\n".join(lines)
    lines += ["", f"lineage of the {title}:"] + lineage(run, best)
    return "\n".join(lines)
