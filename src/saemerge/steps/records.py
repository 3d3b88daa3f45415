"""Individuals as plain dicts (what kfp passes between steps) and content-addressed models.

A record is JSON-able: it crosses step boundaries as a kfp parameter and lands as a row of
``population.parquet`` (:data:`saemerge.runlog.POPULATION_SCHEMA`). Missing values are left
out rather than None: kfp parameters cannot carry None. Models are published
under ``RUN/models/<content-hash>/``; a recipe file maps the recipe that made a model
(inputs' identities and parameters) to its record, so a retried or resumed step finds its
model before doing any work.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from saemerge import runlog, storage
from saemerge.core.archive import Member
from saemerge.runlog import RunLayout

log = logging.getLogger(__name__)

RECORD_DEFAULTS = {
    "parents": [],
    "origin": "",
    "born": -1,
    "generation": -1,
    "sparsity": 0.0,
    "s_t": 0.0,
    "n_scored": 0,
    "scores": {},
    "status": "candidate",
    "reason": "",
}


def make_record(content_hash: str, uri: str, **fields) -> dict:
    """A record; fields without a value are left out (kfp parameters cannot hold None)."""
    record = {**RECORD_DEFAULTS, **fields, "id": runlog.member_id(content_hash), "content_hash": content_hash, "uri": uri}
    record["parents"] = list(record["parents"])
    return without_none(record)


def without_none(record: Mapping) -> dict:
    return {k: v for k, v in record.items() if v is not None}


def to_member(record: Mapping) -> Member:
    return Member(
        id=record["id"],
        content_hash=record["content_hash"],
        fitness=float(record["fitness"]),
        score=float(record["score"]),
        sparsity=float(record["sparsity"]),
        parents=tuple(record.get("parents") or ()),
        generation=int(record.get("born", -1)),
    )


def input_identity(uri: str) -> str:
    """What identifies an input for a recipe: its manifest's content hash, else its URI."""
    manifest = storage.read_manifest(uri)
    if manifest:
        return manifest.get("content_hash") or manifest.get("files_hash") or uri
    return str(uri)


def find_recipe(run: str, **recipe) -> tuple[str, dict | None]:
    """(recipe key, the record it produced earlier or None). A record whose model is gone is ignored."""
    from saemerge.core.hashing import recipe_key  # imports torch; only model-making steps need it

    key = recipe_key(**recipe)
    uri = RunLayout(run).recipe(key)
    if storage.exists(uri):
        record = runlog.read_json(uri)
        if storage.exists(record["uri"]):
            log.info("reusing %s (recipe %s)", record["uri"], key[:12])
            return key, record
    return key, None


def publish_model(run: str, key: str, compute: Callable[[Path], dict], make: Callable[[dict], dict]) -> dict:
    """Compute a model into scratch space, publish it content-addressed, record its recipe.

    Args:
        compute: writes the checkpoint into the directory it is given; returns the op's
            summary (with "content_hash").
        make: turns the summary into the record (given "content_hash" and "uri").
    """
    scratch = storage.scratch_dir("model-")
    try:
        summary = compute(scratch / "model")
        digest = summary["content_hash"]
        uri = RunLayout(run).model(digest)
        if not storage.exists(uri):
            with storage.local_output(uri, content_hash=digest) as out:
                for item in (scratch / "model").iterdir():
                    shutil.move(str(item), out / item.name)
        record = make({**summary, "uri": uri})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    runlog.write_json(RunLayout(run).recipe(key), record)
    return record


def describe_model(artifact, record: Mapping) -> None:
    """Point a kfp Model artifact at the record's checkpoint and attach its figures (for the UI)."""
    if not record.get("uri"):
        return
    artifact.uri = record["uri"]
    for key in ("id", "content_hash", "origin", "sparsity", "s_t", "lambda_mean", "status"):
        if record.get(key) is not None:
            artifact.metadata[key] = record[key]
    if record.get("parents"):
        artifact.metadata["parents"] = ",".join(record["parents"])
