"""Run-time task configs: a shipped task YAML pointed at this call's JSONL file.

The shipped YAMLs under ``tasks/`` leave ``data_files.test`` empty, because the file
changes with every generation. For each sample the evaluator writes, into a scratch directory,
the docs to score and a small YAML that ``include``\\ s the shipped one and sets ``data_files``. lm-eval loads that
file by path through the same TaskManager, so nothing is re-indexed.

A task with ``split_by`` (MMLU-ProX: the language) becomes one lm-eval task per value,
named ``<task>_<value>``, each with the overrides its value needs.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from saemerge.evaluate.taskfns import mmlu_prox_language_overrides
from saemerge.evaluate.taskspec import TaskSpec, write_jsonl

# Per-value overrides for tasks split at run time, by the field they split on.
SPLIT_OVERRIDES = {"language": mmlu_prox_language_overrides}


@dataclass(frozen=True)
class LmTask:
    """One lm-eval task to run: its name, the saemerge task it belongs to, its YAML."""

    name: str
    task: str
    yaml: Path


def docs_digest(docs: list[dict]) -> str:
    """A short digest of docs (their content and order)."""
    h = hashlib.sha256()
    for d in docs:
        h.update(json.dumps(d, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()[:12]


def _base_config(spec: TaskSpec) -> dict[str, Any]:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(spec.yaml, resolve_func=False, recursive=False)


def write_overlays(
    spec: TaskSpec,
    docs: list[dict],
    workdir: Path,
    *,
    max_gen_toks: int | None = None,
) -> list[LmTask]:
    """Write the docs and the YAML(s) lm-eval needs to score them under ``workdir``.

    Args:
        spec: the task.
        docs: the docs to score (each with its ``id``).
        workdir: a scratch directory (also holds the datasets cache for these files).
        max_gen_toks: overrides the YAML's generation length (generate_until tasks).

    Returns:
        The lm-eval tasks to load, one per ``split_by`` value (or just one).
    """
    groups: dict[str | None, list[dict]] = defaultdict(list)
    for doc in docs:
        groups[str(doc[spec.split_by]) if spec.split_by else None].append(doc)
    base = _base_config(spec)
    out = []
    for key in sorted(groups, key=str):
        part = groups[key]
        name = spec.name if key is None else f"{spec.name}_{key}"
        data = write_jsonl(workdir / f"{name}-{docs_digest(part)}.jsonl", part)
        cfg: dict[str, Any] = {
            "include": str(spec.yaml),
            "task": name,
            "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(workdir / "datasets-cache")},
        }
        if key is not None:
            assert spec.split_by, "a group key is set only when the docs are split by a field"
            cfg.update(SPLIT_OVERRIDES[spec.split_by](key))
        if max_gen_toks is not None and base.get("output_type") == "generate_until":
            gen = dict(cfg.get("generation_kwargs") or base.get("generation_kwargs") or {})
            gen["max_gen_toks"] = int(max_gen_toks)
            cfg["generation_kwargs"] = gen
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
        out.append(LmTask(name, spec.name, path))
    return out
