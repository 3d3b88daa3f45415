"""Run-time task configs: a task's YAML pointed at this call's JSONL file.

A task's YAML (shipped, installed, or the user's) reads its data from wherever it says; the
evaluated docs change with every generation. For each sample the evaluator writes, into a
scratch directory, the docs to score and a small YAML that ``include``\\ s the task's YAML and
sets what makes lm-eval read exactly those docs: ``data_files`` of a ``json`` dataset with one
``test`` split, and, where the YAML says otherwise, no other splits, the number of shots the
sidecar gives, and the shots each doc carries (saemerge chooses them per document,
:mod:`saemerge.evaluate.sampling`; lm-eval's own sampler would make a doc's shots depend on the
other docs drawn). Only keys whose value differs from the YAML's are written, so the shipped
YAMLs, written for this, get a two-key overlay. lm-eval loads the file by path, so nothing is
re-indexed.

A task with ``split_by`` (MMLU-ProX: the language) becomes one lm-eval task per value, named
``<task>_<value>``, each with the overrides its value needs (``split_overrides``) or including
the task its value names (``split_tasks``: ``mgsm_direct_{value}``).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from saemerge.errors import SaeMergeError
from saemerge.evaluate.taskfns import SHOTS_FIELD, mmlu_prox_language_overrides
from saemerge.evaluate.taskspec import TaskSpec, write_jsonl

# Per-value overrides for tasks split at run time, by the sidecar's split_overrides.
SPLIT_OVERRIDES = {"mmlu_prox_language": mmlu_prox_language_overrides}
SHOTS_SAMPLER = "saemerge.evaluate.taskfns.AttachedShotsSampler"


class FunctionTag(str):
    """A value written as ``!function NAME`` in an overlay YAML."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(FunctionTag, lambda d, v: d.represent_scalar("!function", str(v)))


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


def _base_config(path: Path) -> dict[str, Any]:
    from saemerge.evaluate.taskset import read_task_yaml

    return read_task_yaml(path)


def redirect(base: Mapping[str, Any], shots: int) -> dict[str, Any]:
    """The keys (beyond ``data_files``) that make a task YAML read one JSONL ``test`` split with
    the shots attached to each doc; only those whose value differs from `base`'s."""
    want: dict[str, Any] = {"dataset_path": "json", "test_split": "test"}
    for key in ("dataset_name", "training_split", "validation_split", "process_results_split"):
        if base.get(key) is not None:
            want[key] = None
    if shots or base.get("fewshot_split") is not None:
        want["fewshot_split"] = "test"
    if base.get("num_fewshot", 0) != shots:
        want["num_fewshot"] = shots
    if shots:
        fc = dict(base.get("fewshot_config") or {})
        if not str(fc.get("sampler", "")).endswith(SHOTS_SAMPLER):
            # lm-eval's !function values read unresolved here are paths: they are not carried over
            keep = {k: v for k, v in fc.items() if k not in ("sampler", "samples") and not _is_function(base, v)}
            want["fewshot_config"] = {**keep, "sampler": FunctionTag(SHOTS_SAMPLER)}
    return {k: v for k, v in want.items() if k not in base or base[k] != v}


def _is_function(base: Mapping[str, Any], value: Any) -> bool:
    return isinstance(value, str) and "/" in value and not value.startswith("{")


def write_overlays(
    spec: TaskSpec,
    docs: list[dict],
    workdir: Path,
    *,
    max_gen_toks: int | None = None,
    yaml_for: Callable[[str], Path] | None = None,
) -> list[LmTask]:
    """Write the docs and the YAML(s) lm-eval needs to score them under ``workdir``.

    Args:
        spec: the task.
        docs: the docs to score (each with its ``id``).
        workdir: a scratch directory (also holds the datasets cache for these files).
        max_gen_toks: overrides the YAML's generation length (generate_until tasks).
        yaml_for: the YAML of a task named by ``split_tasks`` (:meth:`TaskSet.yaml_for`).

    Returns:
        The lm-eval tasks to load, one per ``split_by`` value (or just one).
    """
    groups: dict[str | None, list[dict]] = defaultdict(list)
    for doc in docs:
        groups[str(doc[spec.split_by]) if spec.split_by else None].append(doc)
    out = []
    for key in sorted(groups, key=str):
        part = groups[key]
        name = spec.name if key is None else f"{spec.name}_{key}"
        source = spec.yaml
        if key is not None and spec.split_tasks:
            if yaml_for is None:
                from saemerge.evaluate.taskset import TaskSet

                yaml_for = TaskSet(()).yaml_for
            source = yaml_for(spec.split_tasks.format(value=key))
        if source is None:
            raise SaeMergeError(f"task {spec.name}: no YAML for its docs of {spec.split_by} {key!r}")
        base = _base_config(source)
        data = write_jsonl(workdir / f"{name}-{docs_digest(part)}.jsonl", part)
        cfg: dict[str, Any] = {
            "include": str(source),
            "task": name,
            "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(workdir / "datasets-cache")},
        }
        attached = max((len(d.get(SHOTS_FIELD) or []) for d in part), default=0)
        cfg.update(redirect(base, spec.shots or attached))
        if key is not None and spec.split_overrides:
            cfg.update(SPLIT_OVERRIDES[spec.split_overrides](key))
        if max_gen_toks is not None and base.get("output_type") == "generate_until":
            gen = dict(cfg.get("generation_kwargs") or base.get("generation_kwargs") or {})
            gen["max_gen_toks"] = int(max_gen_toks)
            cfg["generation_kwargs"] = gen
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.dump(cfg, Dumper=_Dumper, allow_unicode=True, sort_keys=False), encoding="utf-8")
        out.append(LmTask(name, spec.name, path))
    return out
