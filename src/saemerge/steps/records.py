"""Individuals as plain dicts (what steps hand each other) and content-addressed models.

A record is JSON-able: it crosses step boundaries in a handoff file, a small Parquet file
passed by URI (:mod:`saemerge.steps.handoff`; never as a kfp parameter value, which Argo would
copy into the Workflow several times), and lands as a row of ``population.parquet``
(:data:`saemerge.run.tables.POPULATION_SCHEMA`). Missing values are left out rather than None
(:func:`without_none`): a handoff document keeps absent keys absent, and a reader tells "not
set" by the key's absence. Models are published
under ``RUN/models/<content-hash>/``, each with a model card (``README.md``,
:mod:`saemerge.steps.cards`); a recipe file maps the recipe that made a model (inputs'
identities and parameters) to its record, so a retried or resumed step finds its model
before doing any work.

The run's inputs (experts, base) are identified by :func:`input_identity`: a published
directory by its manifest's content hash, a plain HF checkpoint by its listing (S3) or its
bytes (local), see :mod:`saemerge.storage.plain`. Each identity a recipe uses is recorded
once in ``RUN/inputs/<identity>.json`` (URI, kind, file count, size), so a run says which
inputs it read; an input changed during a run shows up there as a second identity for its URI.

kfp ``Model`` artifacts (:func:`describe_model`) keep the URI the launcher assigned: the
launcher uploads the artifact's local file to that URI and records it (KFP's
``launcher_v2.go`` merges a URI the step wrote back into the artifact, derives the object
key from the pipeline root and fails on a URI outside it). The checkpoint's place travels
in the artifact's metadata and in a tiny JSON pointer file at ``artifact.path``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from saemerge import storage
from saemerge.core.archive import Member
from saemerge.run.inspect import all_individuals
from saemerge.run.inspect import lineage as lineage_of
from saemerge.run.layout import RunLayout, member_id
from saemerge.run.tables import read_json, write_json
from saemerge.steps.cards import CARD_NAME, render_card

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
    record = {
        **RECORD_DEFAULTS,
        **fields,
        "id": member_id(content_hash),
        "content_hash": content_hash,
        "uri": uri,
    }
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


# Inputs identified in this process, by identity: what find_recipe records in the run, and
# the URIs a model card names. Recipes carry identities, not URIs; this maps them back.
_INPUTS: dict[str, dict] = {}
# Recipes looked up in this process, by key: publish_model writes them into the model card.
_RECIPES: dict[str, dict] = {}


def input_identity(uri: str) -> str:
    """What identifies an input in a recipe: its manifest's content hash, else (a plain HF
    checkpoint) the hash of its S3 listing or of its local files (:func:`saemerge.storage.identify`)."""
    info = storage.identify(uri)
    _INPUTS.setdefault(info["identity"], info)
    return info["identity"]


def _identities(value) -> list[str]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in values if isinstance(v, str) and v in _INPUTS]


def record_inputs(run: str, recipe: Mapping) -> None:
    """Write ``RUN/inputs/<identity>.json`` for each input identity the recipe names (once)."""
    for value in recipe.values():
        for ident in _identities(value):
            uri = RunLayout(run).input_record(ident)
            if not storage.exists(uri):
                write_json(uri, _INPUTS[ident])


def find_recipe(run: str, **recipe) -> tuple[str, dict | None]:
    """(recipe key, the record it produced earlier or None). A record whose model is gone is ignored."""
    from saemerge.core.hashing import recipe_key  # imports torch; only model-making steps need it

    key = recipe_key(**recipe)
    _RECIPES[key] = dict(recipe)
    record_inputs(run, recipe)
    uri = RunLayout(run).recipe(key)
    if storage.exists(uri):
        record = read_json(uri)
        if storage.exists(record["uri"]):
            log.info("reusing %s (recipe %s)", record["uri"], key[:12])
            return key, record
    return key, None


def publish_model(run: str, key: str, compute: Callable[[Path], dict], make: Callable[[dict], dict]) -> dict:
    """Compute a model into scratch space, publish it content-addressed with its model card,
    record its recipe.

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
        record = make({**summary, "uri": uri})
        if not storage.exists(uri):
            write_card(scratch / "model", run, record, _RECIPES.get(key, {}))
            with storage.local_output(uri, content_hash=digest) as out:
                for item in (scratch / "model").iterdir():
                    shutil.move(str(item), out / item.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write_json(RunLayout(run).recipe(key), record)
    return record


def write_card(model_dir: Path, run: str, record: Mapping, recipe: Mapping) -> None:
    """The model card (README.md) of a model about to be published (:mod:`saemerge.steps.cards`)."""
    layout = RunLayout(run)
    config = layout.read_config() if storage.exists(layout.run_json) else {}
    base_ident = recipe.get("base")
    base = config.get("base_uri") or (_INPUTS[base_ident]["uri"] if base_ident in _INPUTS else None)
    lineage: list[str] = []
    if record.get("parents"):
        people = all_individuals(layout)
        lineage = [f"{record['id']}  {record.get('origin', '')}"]
        for parent in record["parents"]:
            lineage += ["  " + line for line in lineage_of(layout, parent, people)]
    seed = recipe.get("seed", config.get("seed"))
    inputs = {ident: _INPUTS[ident]["uri"] for v in recipe.values() for ident in _identities(v)}
    text = render_card(
        record, recipe, base_model=str(base or "unknown"), run=run, seed=seed, inputs=inputs, lineage=lineage
    )
    (model_dir / CARD_NAME).write_text(text, encoding="utf-8")


POINTER_KEYS = ("uri", "content_hash", "id")


def describe_model(artifact, record: Mapping) -> None:
    """Describe the record's checkpoint on a kfp Model artifact, for lineage in the Kubeflow UI.

    The artifact keeps the URI the launcher assigned (never rewritten: see the module doc).
    Its metadata carries the checkpoint's URI (``checkpoint_uri``), content hash and figures,
    and the file at ``artifact.path`` is a pointer: ``{"uri", "content_hash", "id"}`` as JSON.
    """
    if not record.get("uri"):
        return
    artifact.metadata["checkpoint_uri"] = record["uri"]
    artifact.metadata["framework"] = "transformers"
    for key in ("id", "content_hash", "origin", "sparsity", "s_t", "lambda_mean", "status"):
        if record.get(key) is not None:
            artifact.metadata[key] = record[key]
    if record.get("parents"):
        artifact.metadata["parents"] = ",".join(record["parents"])
    path = Path(artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: record[k] for k in POINTER_KEYS if k in record}, sort_keys=True) + "\n")


def describe_best(artifact, run: str) -> dict:
    """Describe the search's best model (``final/best.json``) on a kfp Model artifact."""
    best = read_json(RunLayout(run).final("best.json"))
    describe_model(artifact, best)
    for key in ("overall_score", "overall_fitness"):
        if best.get(key) is not None:
            artifact.metadata[key] = best[key]
    return best
