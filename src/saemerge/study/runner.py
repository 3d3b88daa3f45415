"""A study's record, and submitting it to Kubeflow (local execution: :mod:`saemerge.study.local`).

The study's record is ``s3://BUCKET/studies/<id>/study.yaml``: the spec and one entry per run
with its run URI and status (``pending``, ``running``, ``succeeded``, ``failed``; and on a
cluster the KFP run id). A run counts as finished when its ``final/results.parquet`` exists, so
the record can never claim more than the runs hold. All runs of a study share one score cache,
``studies/<id>/score-cache/``: the base, the experts and the one-shot merges of a bench are
scored once for the whole study, not once per run.

A study is a set of runs, never one workflow: Argo keeps a whole workflow in one Kubernetes
object, and Kubeflow's scheduler is what spreads the runs over the cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from saemerge import storage
from saemerge.errors import SaeMergeError
from saemerge.run.layout import RunLayout
from saemerge.run.tables import read_json
from saemerge.study.spec import Entry, StudySpec, parse_spec

log = logging.getLogger(__name__)

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"


@dataclass(frozen=True)
class StudyLayout:
    """Where a study lives: ``s3://BUCKET/studies/<id>/``."""

    bucket: str
    study_id: str

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}/studies/{self.study_id}"

    @property
    def record(self) -> str:
        return f"{self.root}/study.yaml"

    @property
    def score_cache(self) -> str:
        return f"{self.root}/score-cache"

    @property
    def report(self) -> str:
        return f"{self.root}/report"

    def run_id(self, entry: Entry) -> str:
        return f"{self.study_id}-{entry.id}"

    def run_uri(self, entry: Entry) -> str:
        return f"s3://{self.bucket}/runs/{self.run_id(entry)}"


def finished(run_uri: str) -> bool:
    return storage.exists(RunLayout(run_uri).final("results.parquet"))


# Where a run writes and the cache it reads through change nothing in its results.
IDENTITY_IGNORES = ("run_uri", "score_cache")
# Parameters added after runs were recorded without them: absent means this value, so a run from
# before the parameter is the same run as one that names its default.
IDENTITY_DEFAULTS = {"opt_splits": "train,validation"}


def config_identity(config: dict[str, Any], version: str) -> str:
    """What decides a run's results: its whole configuration as ``run.json`` records it (the
    search, generations, the inputs' URIs, so the bench and its version, every parameter and
    the seed) but :data:`IDENTITY_IGNORES`, and the saemerge version that ran it."""
    config = {**IDENTITY_DEFAULTS, **config}
    doc = {"config": {k: v for k, v in config.items() if k not in IDENTITY_IGNORES}, "saemerge": version}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_identity(spec: StudySpec, entry: Entry, bucket: str, *, local: bool = False) -> str:
    """The identity of the run an entry would start with this code (:func:`config_identity`),
    here (`local`: ``saemerge run --local`` completes the configuration) or on a cluster.

    Two runs with the same identity are the same run: the searches are seeded and scoring is
    deterministic on one device. Devices left at ``auto`` compare as written, so a study
    should not mix CPU and GPU runs in one bucket and expect reuse to tell them apart.
    """
    from saemerge import __version__

    config = spec.run_config(entry, f"s3://{bucket}/runs/identity", bucket, local=local)
    return config_identity(config.to_json(), __version__)


def recorded_identity(run_uri: str) -> str | None:
    """The identity of a run from what its ``run.json`` says it ran (None: no readable record)."""
    try:
        info = read_json(RunLayout(run_uri).run_json)
        return config_identity(info["config"], str(info.get("versions", {}).get("saemerge", "")))
    except (SaeMergeError, KeyError, TypeError, ValueError):
        return None


def finished_runs(bucket: str, *, exclude: str = "") -> dict[str, dict[str, str]]:
    """Every finished run the bucket's studies recorded (but study `exclude`), by the identity
    its ``run.json`` records: ``{identity: {"run_uri", "from"}}``, "from" being
    ``<study>/<entry>``. A study whose record cannot be read is skipped with a warning."""
    found: dict[str, dict[str, str]] = {}
    for folder in storage.list_uris(f"s3://{bucket}/studies", recursive=False):
        layout = StudyLayout(bucket, folder.rstrip("/").rsplit("/", 1)[-1])
        if layout.study_id == exclude or not storage.exists(layout.record):
            continue
        try:
            entries = yaml.safe_load(storage.read_bytes(layout.record))["entries"]
            candidates = [(e["id"], e["run_uri"]) for e in entries if not e.get("reused_from")]
        except (SaeMergeError, KeyError, TypeError, yaml.YAMLError) as exc:
            log.warning("study %s: record unreadable, its runs are not offered for reuse (%s)", layout.study_id, exc)
            continue
        for entry_id, run_uri in candidates:
            if not finished(run_uri):
                continue
            identity = recorded_identity(run_uri)
            if identity is not None:
                found.setdefault(identity, {"run_uri": run_uri, "from": f"{layout.study_id}/{entry_id}"})
    return found


def reuse_finished_runs(record: StudyRecord, bucket: str, *, local: bool, out: Callable[[str], None] = print) -> int:
    """Point every entry not yet started elsewhere (pending or failed, no KFP run) that another
    study of the bucket already ran (same :func:`run_identity` as the finished run's recorded
    identity) at that run, marked ``reused_from``; return how many."""
    todo = [
        e
        for e in record.spec.entries
        if record.entries[e.id]["status"] in (PENDING, FAILED) and not record.entries[e.id].get("kfp_run_id")
    ]
    if not todo:
        return 0
    known = finished_runs(bucket, exclude=record.layout.study_id)
    reused = 0
    for entry in todo:
        twin = known.get(run_identity(record.spec, entry, bucket, local=local))
        if twin is None:
            continue
        record.update(entry.id, status=SUCCEEDED, run_uri=twin["run_uri"], reused_from=twin["from"])
        out(f"study {record.layout.study_id}: {entry.id} is run {twin['from']} ({twin['run_uri']}); reused")
        reused += 1
    return reused


class StudyRecord:
    """``study.yaml``: the spec and the entries' state, written through on every change."""

    def __init__(self, layout: StudyLayout, spec: StudySpec, entries: dict[str, dict[str, Any]]):
        self.layout, self.spec, self.entries = layout, spec, entries

    @classmethod
    def open(cls, layout: StudyLayout, spec: StudySpec | None = None) -> StudyRecord:
        """The study's record; a new one for `spec` when there is none.

        Raises:
            SaeMergeError: no study of that id (and no spec given), or a spec that differs from
                the recorded one (a study's grid is fixed when it starts: use another --id).
        """
        if storage.exists(layout.record):
            saved = yaml.safe_load(storage.read_bytes(layout.record))
            recorded = parse_spec(saved["spec"])
            if spec is not None and spec.to_dict() != recorded.to_dict():
                raise SaeMergeError(
                    f"study {layout.study_id} at {layout.root} was started with another grid; "
                    "give the new one another --id"
                )
            entries = {e["id"]: e for e in saved["entries"]}
            return cls(layout, recorded, entries)
        if spec is None:
            raise SaeMergeError(f"no study {layout.study_id!r} at {layout.root}")
        record = cls.fresh(layout, spec)
        record.save()
        return record

    @classmethod
    def fresh(cls, layout: StudyLayout, spec: StudySpec) -> StudyRecord:
        """A new record of `spec`, every entry pending (not written)."""
        entries = {
            e.id: {
                "id": e.id,
                "arm": e.arm.name,
                "search": e.arm.search,
                "bench_seed": e.bench_seed,
                "run_seed": e.run_seed,
                "run_id": layout.run_id(e),
                "run_uri": layout.run_uri(e),
                "status": PENDING,
            }
            for e in spec.entries
        }
        return cls(layout, spec, entries)

    def save(self) -> None:
        doc = {"study": self.layout.study_id, "spec": self.spec.to_dict(), "entries": list(self.entries.values())}
        storage.write_bytes(self.layout.record, yaml.safe_dump(doc, sort_keys=False).encode())

    def update(self, entry_id: str, **fields: Any) -> None:
        self.entries[entry_id].update(fields)
        self.save()

    def refresh(self) -> None:
        """Mark every run whose results exist as succeeded (a run may have finished unrecorded)."""
        changed = False
        for e in self.entries.values():
            if e["status"] != SUCCEEDED and finished(e["run_uri"]):
                e["status"], changed = SUCCEEDED, True
        if changed:
            self.save()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries.values():
            out[e["status"]] = out.get(e["status"], 0) + 1
        return out


class StudyWaitTimeout(SaeMergeError):
    """``study submit --wait --timeout`` ran out on a run: exit code 3, as ``saemerge submit``."""

    exit_code = 3


def submit_study(
    spec: StudySpec,
    request_template: Any,
    *,
    study_id: str | None = None,
    bucket: str = "saemerge",
    wait: bool = False,
    reuse: bool = True,
    out: Callable[[str], None] = print,
) -> StudyRecord:
    """Submit every entry not yet submitted as one KFP run of the experiment ``study-<id>``.

    Args:
        request_template: a :class:`~saemerge.pipeline.submit.SubmitRequest` with the cluster's
            settings (host, token, namespace, ...); its params, run name, experiment and compile
            options are set per entry here.
        wait: follow the runs until each one ends; a run that did not succeed fails the call.
        reuse: entries another study of the bucket already ran (same run identity) point at
            that run and are not submitted.

    Raises:
        KfpApiError: the KFP API refused or failed a call (exit code 4); the message names the
            entry, and the entries submitted before it are recorded.
        StudyWaitTimeout: ``wait`` with a timeout, and a run did not end in time (exit code 3).
    """
    import dataclasses

    from saemerge.pipeline.submit import KfpApiError, connect, submit, wait_for_run

    layout = StudyLayout(bucket, study_id or spec.name)
    dry = bool(request_template.dry_run)
    # a dry run reads and records nothing
    record = StudyRecord.fresh(layout, spec) if dry else StudyRecord.open(layout, spec)
    if not dry:
        record.refresh()
        if reuse:
            reuse_finished_runs(record, bucket, local=False, out=out)
    entries = {e.id: e for e in record.spec.entries}
    experiment = f"study-{layout.study_id}"
    for entry_id, state in record.entries.items():
        if state["status"] == SUCCEEDED or state.get("kfp_run_id"):
            continue
        entry = entries[entry_id]
        config = record.spec.run_config(entry, state["run_uri"], bucket, layout.score_cache)
        req = dataclasses.replace(
            request_template,
            experiment=experiment,
            run_name=state["run_id"],
            params=config.pipeline_arguments(),
            options=dataclasses.replace(request_template.options, search=entry.arm.search, steps=config.steps),
            wait=False,
        )
        try:
            result = submit(req, out=out)
        except KfpApiError as exc:  # the entry it failed on; those submitted before stay recorded
            raise KfpApiError(f"study {layout.study_id}, run {entry_id}: {exc}", exc.status, exc.result) from None
        if req.dry_run:
            continue
        record.update(entry_id, status=RUNNING, kfp_run_id=result.run_id, experiment_id=result.experiment_id)
    if wait and not request_template.dry_run:
        client, _ = connect(request_template)
        failed = []
        for entry_id, state in record.entries.items():
            if state["status"] != RUNNING or not state.get("kfp_run_id"):
                continue
            try:
                final = wait_for_run(
                    client,
                    state["kfp_run_id"],
                    poll_interval=request_template.poll_interval,
                    timeout=request_template.timeout,
                    out=out,
                )
            except TimeoutError as exc:
                raise StudyWaitTimeout(f"study {layout.study_id}: {exc}; `saemerge study status` follows it") from None
            record.update(entry_id, status=SUCCEEDED if final == "SUCCEEDED" else FAILED, kfp_state=final)
            if final != "SUCCEEDED":
                failed.append(entry_id)
        if failed:
            raise SaeMergeError(f"study {layout.study_id}: {len(failed)} run(s) did not succeed: {', '.join(failed)}")
    return record
