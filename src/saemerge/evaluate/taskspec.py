"""The tasks saemerge evaluates, and where their data lives.

A :class:`TaskSpec` is an lm-eval task plus what the sampling step needs (its *sidecar*): which
directory under the data root holds its JSONL splits, which splits the optimisation set may
draw from (never ``test``), how the test subset is stratified, how few-shot examples are
chosen, and which (metric, filter) is scored. A run's tasks are resolved into specs once, at
the edge (:mod:`saemerge.evaluate.taskset`); the four shipped ones live under ``tasks/``
(a YAML and a ``<task>.saemerge.yaml`` sidecar each), as a user's task directory does.

Data layout under a data root (``BENCH_DIR/data`` for the tiny benchmark)::

    math/{train,validation,test}.jsonl          saebench_math
    multilingual/{train,validation,test}.jsonl  saebench_multilingual
    gsm8k/{train,test}.jsonl                    gsm8k_sae (openai/gsm8k "main", as JSONL)
    mmlu_prox/{validation,test}.jsonl           mmlu_prox_sae (li-lab/MMLU-ProX, all languages
                                                in one file, each row with a "language" field)

Rows without an ``id`` get ``<task>-<split>-<line>``; ids must be unique within a task.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from saemerge.errors import SaeMergeError

TASKS_DIR = Path(__file__).parent / "tasks"
SPLITS = ("train", "validation", "test")
SHOT_ORDERS = ("first", "random")


@dataclass(frozen=True)
class TaskSpec:
    """What saemerge needs to know about one lm-eval task beyond its YAML (its sidecar).

    Attributes:
        name: the task's name in a run (its lm-eval ``task:``; the sidecar's file stem).
        data: directory under the data root holding ``<split>.jsonl``.
        pool_splits: splits the optimisation set draws from (those present are used; never test).
        stratify: doc field the test subset is stratified by, or None.
        split_by: doc field whose values become separate lm-eval tasks at run time
            (MMLU-ProX: the answer regex and stop words depend on the language).
        shots: few-shot examples per doc when sampling (0: zero-shot).
        shot_split: split the few-shot examples come from.
        shot_match: doc fields a shot must share with its doc (empty: any).
        shot_order: ``"first"`` (lm-eval's first_n sampler) or ``"random"`` (its default).
        required: fields every row must have.
        yaml: the lm-eval task YAML (None: each ``split_by`` value names its own, ``split_tasks``).
        metric: the scored per-example metric (an entry of the YAML's ``metric_list``).
        filter: the filter whose output is scored (``none`` for a task without ``filter_list``).
        weight: the task's weight in the fitness (SAE-SPEC §4; default equal).
        split_tasks: with ``split_by``, the lm-eval task each value runs, ``{value}`` filled in
            (``mgsm_direct_{value}``); default: this task with ``split_overrides``.
        split_overrides: with ``split_by``, the name of saemerge's per-value overrides
            (``mmlu_prox_language``: the answer regex and stop words of that language).
        source: ``shipped``, ``lm_eval`` (a task of the installed lm-eval) or ``user``.
        sidecar: the sidecar file (None for an installed task taken with the defaults).
    """

    name: str
    data: str
    pool_splits: tuple[str, ...]
    stratify: str | None = None
    split_by: str | None = None
    shots: int = 0
    shot_split: str | None = None
    shot_match: tuple[str, ...] = ()
    shot_order: str = "random"
    required: tuple[str, ...] = ()
    yaml: Path | None = None
    metric: str = "acc"
    filter: str = "none"
    weight: float = 1.0
    split_tasks: str | None = None
    split_overrides: str | None = None
    source: str = "shipped"
    sidecar: Path | None = None


def resolve_data_root(path: str | Path, data_dirs: Iterable[str] = ()) -> Path:
    """The data root: ``path`` itself, or ``path/data`` when given a tiny-benchmark directory
    (one holding ``data/`` and none of the tasks' ``data_dirs``)."""
    path = Path(path)
    if (path / "data").is_dir() and not any((path / d).is_dir() for d in data_dirs):
        path = path / "data"
    if not path.is_dir():
        raise SaeMergeError(f"{path}: no such data directory")
    return path


# The largest record (one JSONL line) a task's data may hold. Real examples are a few KB; one
# record of 50 MB had final evaluation killed by the OOM killer at 22.7 GB, after the search.
MAX_RECORD_BYTES = 1 << 20


def parse_record(line: bytes | str, where: str, lineno: int) -> dict:
    """One JSONL line as a JSON object, or a one-line error naming ``where:lineno``."""
    size = len(line.encode() if isinstance(line, str) else line)
    if size > MAX_RECORD_BYTES:
        raise SaeMergeError(
            f"{where}:{lineno}: a record of {size / 2**20:.1f} MiB; records may be at most "
            f"{MAX_RECORD_BYTES // 2**20} MiB"
        )
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise SaeMergeError(f"{where}:{lineno}: not valid JSON ({exc})") from None
    if not isinstance(row, dict):
        raise SaeMergeError(f"{where}:{lineno}: expected a JSON object")
    return row


def read_jsonl(path: str | Path, label: str | None = None) -> list[dict]:
    """Rows of a JSONL file; a bad or oversized line is reported with its number (and `label`,
    e.g. the S3 URI it was downloaded from, in place of the local path)."""
    path = Path(path)
    where = label or str(path)
    rows = []
    try:
        with path.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    rows.append(parse_record(line, where, lineno))
    except FileNotFoundError:
        raise SaeMergeError(f"{where}: no such file") from None
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def check_rows(spec: TaskSpec, rows: list[dict], source: str | Path) -> list[dict]:
    """Checks a task's rows: non-empty, unique string ids, required fields present."""
    if not rows:
        raise SaeMergeError(f"{source}: no examples for task {spec.name}")
    seen: set[str] = set()
    for i, row in enumerate(rows):
        rid = row.get("id")
        if not isinstance(rid, str) or not rid:
            raise SaeMergeError(f"{source}: example {i} of task {spec.name} has no string 'id'")
        if rid in seen:
            raise SaeMergeError(f"{source}: example id {rid!r} appears twice")
        seen.add(rid)
        missing = [f for f in spec.required if f not in row]
        if missing:
            raise SaeMergeError(f"{source}: example {rid!r} lacks field(s) {', '.join(missing)} for task {spec.name}")
    return rows


def load_split(spec: TaskSpec, data_root: Path, split: str) -> list[dict] | None:
    """A split's rows with ids filled in, or None when the split file does not exist."""
    path = Path(data_root) / spec.data / f"{split}.jsonl"
    if not path.is_file():
        return None
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        row.setdefault("id", f"{spec.name}-{split}-{i}")
    return check_rows(spec, rows, path)
