"""Old path of the run bookkeeping, kept for one release: use :mod:`saemerge.run` instead.

:mod:`saemerge.run.layout` (RunLayout, gen_name, member_id, check_run_id),
:mod:`saemerge.run.tables` (schemas, Parquet and JSON I/O) and :mod:`saemerge.run.inspect`
(``saemerge inspect``'s text) hold what this module held.
"""

from __future__ import annotations

from saemerge.run.inspect import all_individuals, describe_run, generation_metrics, lineage
from saemerge.run.layout import RunLayout, check_run_id, gen_name, member_id
from saemerge.run.tables import (
    GEN_METRICS,
    POPULATION_SCHEMA,
    SCORE_PREFIX,
    read_json,
    read_table,
    results_table,
    rows_to_table,
    table_from_bytes,
    table_to_rows,
    write_json,
    write_table,
)

__all__ = [
    "GEN_METRICS",
    "POPULATION_SCHEMA",
    "SCORE_PREFIX",
    "RunLayout",
    "all_individuals",
    "check_run_id",
    "describe_run",
    "gen_name",
    "generation_metrics",
    "lineage",
    "member_id",
    "read_json",
    "read_table",
    "results_table",
    "rows_to_table",
    "table_from_bytes",
    "table_to_rows",
    "write_json",
    "write_table",
]
