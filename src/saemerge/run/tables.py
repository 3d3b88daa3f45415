"""A run's records as tables and JSON: the schemas, rows <-> Arrow tables, Parquet and JSON I/O.

Population tables hold one row per individual (POPULATION_SCHEMA, plus one float column
``score.<task>`` per task). Per-example tables have the evaluator's columns
(:data:`saemerge.evaluate.results.SCHEMA`: task, example_id, correct, answer, target), plus
``content_hash``, ``model_id`` and ``fresh`` (evaluated by that step, not taken from the cache)
in the generation tables and ``method`` in ``final/scores.parquet``. Every table is Parquet,
written whole and atomically. Where each table lives is :class:`saemerge.run.layout.RunLayout`'s.
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
