"""What steps hand each other: records (and pairs, mating orders, particles) in small Parquet
files, passed between steps by URI.

Kubeflow's backend stores a run as one Argo Workflow object, and every parameter value a task
takes or gives is copied into that object several times (the executor input sits twice in the
task's pod spec patch, and the inputs and outputs of its Pod, Retry and DAG nodes are kept in
the status). Lists of records there grow the object by kilobytes per task until it no longer
fits in etcd (`saemerge compile` prints the estimate). So a step writes what it hands on to
``RUN/<gen>/handoff/<name>-<digest>.parquet`` (:meth:`~saemerge.run.layout.RunLayout.handoff`) and
passes the URI; the next step reads it. The digest is that of the content, as models are
content-addressed: a retried step writes the same file again, and a URI names one content
only, so KFP's step cache (keyed on input values) still sees a change upstream.

A file holds one JSON document per row (column ``doc``, and ``id`` where the document is a
record), so documents come back exactly as they were written: ints stay ints, absent keys stay
absent. A handoff parameter is a list of such URIs (their rows, concatenated in order) or one
URI; documents themselves are accepted too, for tests and hand calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from saemerge.errors import SaeMergeError
from saemerge.run.layout import RunLayout
from saemerge.run.tables import read_table, write_table

SCHEMA = pa.schema([("id", pa.string()), ("doc", pa.string())])


def save(run_uri: str, generation: int | str, name: str, docs: Iterable[Mapping[str, Any]]) -> str:
    """Write `docs` to ``RUN/<gen>/handoff/<name>-<digest>.parquet`` (whole, atomically; the
    digest is the content's); return its URI."""
    docs = list(docs)
    texts = [json.dumps(d, sort_keys=True) for d in docs]
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    uri = RunLayout(run_uri).handoff(generation, f"{name}-{digest}")
    table = pa.table({"id": [str(d.get("id", "")) for d in docs], "doc": texts}, schema=SCHEMA)
    write_table(uri, table)
    return uri


def save_each(run_uri: str, generation: int | str, prefix: str, docs: Iterable[Mapping[str, Any]]) -> list[str]:
    """One file per document, ``<prefix>-<i>``: the items of a ParallelFor. Returns their URIs."""
    return [save(run_uri, generation, f"{prefix}-{i}", [doc]) for i, doc in enumerate(docs)]


def load(value: Any) -> list[dict]:
    """The documents of a handoff parameter: a URI, a list of URIs (concatenated in order), or
    documents (passed through)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        return [dict(value)]
    docs: list[dict] = []
    for item in value or []:
        if isinstance(item, Mapping):
            docs.append(dict(item))
        elif isinstance(item, str):
            table = read_table(item)
            if "doc" not in table.column_names:
                raise SaeMergeError(f"{item}: not a handoff file (no 'doc' column)")
            docs += [json.loads(d) for d in table.column("doc").to_pylist()]
        else:
            raise SaeMergeError(f"handoff value {item!r}: expected a URI or a dict")
    return docs


def load_one(value: Any) -> dict:
    """The single document of a handoff parameter (a ParallelFor item)."""
    docs = load(value)
    if len(docs) != 1:
        raise SaeMergeError(f"handoff {value!r}: expected one document, found {len(docs)}")
    return docs[0]
