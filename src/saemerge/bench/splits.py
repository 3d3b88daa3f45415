"""Train/validation/test splits of the tiny benchmark as JSONL files.

Layout (the data contract shared with the evaluator)::

    data/math/{train,validation,test}.jsonl          {"id": "math-<split>-<n>", "question", "answer"}
    data/multilingual/{train,validation,test}.jsonl  {"id": "ml-<split>-<n>", "question", "options",
                                                      "answer", "answer_index", "category", "language"}

Every test item also has ``"cluster"`` (last field): items of one cluster are correlated,
independent of other clusters' items, for clustered standard errors. A math problem is
its own cluster (its id); a multilingual item's cluster is its (fact, language) pair,
``"<relation>:<subject>:<language>"`` (e.g. ``"color:Blorp:qaa"``), shared by the pair's
phrasings.

Test items never appear in train or validation, compared by normalised question text.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from saemerge.errors import SaeMergeError

SPLITS: tuple[str, ...] = ("train", "validation", "test")
TASKS: tuple[str, ...] = ("math", "multilingual")
ID_PREFIX = {"math": "math", "multilingual": "ml"}

_SPACE_RE = re.compile(r"\s+")


def normalise_question(text: str) -> str:
    """Lowercase, collapse whitespace, drop a trailing ``?`` or ``.``: the key for overlap checks."""
    return _SPACE_RE.sub(" ", text.lower()).strip().rstrip("?.").strip()


def unique_by_question(stream: Iterable[dict], counts: dict[str, int]) -> dict[str, list[dict]]:
    """Draw items from ``stream`` until each split has its count, skipping repeated questions.

    Splits fill in the order of ``counts``; a question seen before (normalised) is
    skipped, so the splits are disjoint by construction.
    """
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    it = iter(stream)
    for split, n in counts.items():
        out[split] = []
        if n <= 0:
            continue
        for item in it:
            key = normalise_question(item["question"])
            if key in seen:
                continue
            seen.add(key)
            out[split].append(item)
            if len(out[split]) == n:
                break
    return out


def with_ids(task: str, split: str, items: list[dict]) -> list[dict]:
    """Items with ``"id": "<prefix>-<split>-<n>"`` as their first field."""
    prefix = ID_PREFIX[task]
    return [{"id": f"{prefix}-{split}-{i}", **item} for i, item in enumerate(items)]


def check_disjoint(splits: dict[str, list[dict]], task: str = "") -> None:
    """Raise if a test question (normalised) also appears in train or validation."""
    test = {normalise_question(x["question"]) for x in splits.get("test", [])}
    for split in ("train", "validation"):
        for item in splits.get(split, []):
            if normalise_question(item["question"]) in test:
                raise SaeMergeError(
                    f"{task or 'data'} {split} item {item.get('id', '?')}: question also in test: {item['question'][:60]!r}"
                )


def write_jsonl(path: Path, items: Iterable[dict]) -> int:
    """Write one JSON object per line (UTF-8, stable key order); returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for item in items:
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    """Read a JSONL file (at most ``limit`` items).

    Raises:
        SaeMergeError: when the file is missing or a line is not JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise SaeMergeError(f"{path}: no such data file")
    out = []
    with open(path, encoding="utf-8") as fh:
        lines: Iterator[str] = itertools.islice(fh, limit) if limit is not None else fh
        for lineno, line in enumerate(lines, 1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SaeMergeError(f"{path}:{lineno}: not a JSON object ({exc.msg})") from None
    return out


def split_path(data_dir: Path, task: str, split: str) -> Path:
    return Path(data_dir) / task / f"{split}.jsonl"


def load_split(data_dir: Path, task: str, split: str, limit: int | None = None) -> list[dict]:
    """One split of one task from a bench ``data/`` directory."""
    return read_jsonl(split_path(data_dir, task, split), limit)


def write_splits(data_dir: Path, task: str, splits: dict[str, list[dict]]) -> dict[str, int]:
    """Assign ids, check disjointness and write the three files; returns counts per split.

    A test item without a ``"cluster"`` gets its own id as its cluster.
    """
    with_id = {split: with_ids(task, split, splits[split]) for split in SPLITS}
    with_id["test"] = [x if "cluster" in x else {**x, "cluster": x["id"]} for x in with_id["test"]]
    check_disjoint(with_id, task)
    return {split: write_jsonl(split_path(data_dir, task, split), with_id[split]) for split in SPLITS}
