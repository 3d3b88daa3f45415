"""The tasks saemerge evaluates, and where their data lives.

One table from task name to :class:`TaskSpec`. Each task is an lm-eval task config shipped
under ``tasks/`` plus what the sampling step needs: which directory under the data root holds
its JSONL splits, which splits the optimisation set may draw from (never ``test``), how the
test subset is stratified, and how few-shot examples are chosen.

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

from saemerge.errors import SaeMergeError, unknown_name

TASKS_DIR = Path(__file__).parent / "tasks"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TaskSpec:
    """What saemerge needs to know about one lm-eval task beyond its YAML.

    Attributes:
        name: the lm-eval task name (also the YAML's file stem under ``tasks/``).
        data: directory under the data root holding ``<split>.jsonl``.
        pool_splits: splits the optimisation set draws from (those present are used).
        stratify: doc field the test subset is stratified by, or None.
        split_by: doc field whose values become separate lm-eval tasks at run time
            (MMLU-ProX: the answer regex and stop words depend on the language).
        shots: few-shot examples per doc when sampling (0: zero-shot).
        shot_split: split the few-shot examples come from.
        shot_match: doc fields a shot must share with its doc (empty: any).
        shot_order: ``"first"`` (lm-eval's first_n sampler) or ``"random"`` (its default).
        required: fields every row must have.
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

    @property
    def yaml(self) -> Path:
        return TASKS_DIR / f"{self.name}.yaml"


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("saebench_math", "math", ("train", "validation"), required=("question", "answer")),
        TaskSpec(
            "saebench_multilingual",
            "multilingual",
            ("train", "validation"),
            stratify="language",
            required=("question", "options", "answer_index"),
        ),
        TaskSpec(
            "gsm8k_sae",
            "gsm8k",
            ("train",),
            shots=5,
            shot_split="train",
            shot_order="random",
            required=("question", "answer"),
        ),
        TaskSpec(
            "mmlu_prox_sae",
            "mmlu_prox",
            ("train", "validation"),
            stratify="language",
            split_by="language",
            shots=5,
            shot_split="validation",
            shot_match=("language", "category"),
            shot_order="first",
            required=("question", "answer", "language", "category", "cot_content"),
        ),
    ]
}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise unknown_name("task", name, TASKS) from None


def parse_tasks(names: Iterable[str] | str) -> list[TaskSpec]:
    """Task specs from names (a comma-separated string or a list), in order, without repeats."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    specs = [get_task(n) for n in dict.fromkeys(n for n in names if n)]
    if not specs:
        raise SaeMergeError("tasks: no task given")
    return specs


def resolve_data_root(path: str | Path) -> Path:
    """The data root: ``path`` itself, or ``path/data`` when given a tiny-benchmark directory."""
    path = Path(path)
    if (path / "data").is_dir() and not any((path / s.data).is_dir() for s in TASKS.values()):
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
