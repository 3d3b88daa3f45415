"""A run's task set: its tasks resolved once, at the edge, from three places.

A run names its tasks (the keys of ``opt_sizes``/``test_sizes``); each name is looked up in
this order:

1. the user's task directory (the run parameter ``tasks_uri``, published with
   ``saemerge upload --tasks``): lm-eval task YAMLs plus a sidecar ``<task>.saemerge.yaml`` per
   task. A sidecar without a YAML of its own configures an installed lm-eval task of that name;
2. the tasks shipped with saemerge (``saemerge/evaluate/tasks/``: a YAML and a sidecar each,
   read by the same code as a user's directory);
3. a task of the installed lm-eval, by name, with the default sidecar (data under
   ``<data_uri>/<task>/``, optimisation sets from train and validation, 0 shots, the YAML's first
   metric under its first filter).

A task YAML in the user's directory whose ``task:`` is shipped or installed is refused (its
name would mean two things), so is a YAML without a sidecar, a sidecar without a task, and
two YAMLs defining one name.

The sidecar's keys (all optional but ``data``; see docs/own-tasks.md):
``data, pool_splits, stratify, split_by, split_tasks, split_overrides, shots, shot_split,
shot_match, shot_order, metric, filter, weight, required``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from saemerge.errors import SaeMergeError, unknown_name
from saemerge.evaluate.taskspec import SHOT_ORDERS, SPLITS, TASKS_DIR, TaskSpec

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".saemerge.yaml"
# the task directory's own settings: how prompts are rendered for every task of a run
SETTINGS_FILE = "saemerge.yaml"
CHAT_KEYS = {"apply_chat_template": bool, "system_instruction": str, "fewshot_as_multiturn": bool}
NO_CHAT = {"apply_chat_template": False, "system_instruction": None, "fewshot_as_multiturn": False}
SOURCES = ("shipped", "lm_eval", "user")
# saemerge's own per-value overrides a sidecar may name for split_by (no code from the sidecar)
SPLIT_OVERRIDES = ("mmlu_prox_language",)
_LIST_KEYS = ("pool_splits", "shot_match", "required")
_STR_KEYS: tuple[str, ...] = ("data", "stratify", "split_by", "split_tasks", "split_overrides", "shot_split")
_STR_KEYS += ("shot_order", "metric", "filter")
SIDECAR_KEYS = (*_STR_KEYS, *_LIST_KEYS, "shots", "weight")


# -- sidecars ---------------------------------------------------------------------------------
def _load_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SaeMergeError(f"{path}: not a readable YAML file ({str(exc).splitlines()[0]})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SaeMergeError(f"{path}: expected a mapping of sidecar keys")
    return data


def parse_sidecar(
    name: str, values: Mapping[str, Any], where: str, *, yaml_path: Path | None, source: str, sidecar: Path | None
) -> TaskSpec:
    """A task's spec from its sidecar values; one line naming `where` and the key when one is bad."""
    for key in values:
        if key not in SIDECAR_KEYS:
            raise unknown_name(f"sidecar key in {where}:", str(key), SIDECAR_KEYS)
    kw: dict[str, Any] = {}
    for key in _STR_KEYS:
        if key in values and values[key] is not None:
            if not isinstance(values[key], str) or not values[key]:
                raise SaeMergeError(f"{where}: {key} {values[key]!r}: expected a non-empty string")
            kw[key] = values[key]
    for key in _LIST_KEYS:
        if key in values and values[key] is not None:
            v = values[key]
            v = [v] if isinstance(v, str) else v
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise SaeMergeError(f"{where}: {key} {values[key]!r}: expected a list of names")
            kw[key] = tuple(v)
    if "shots" in values:
        shots = values["shots"]
        if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
            raise SaeMergeError(f"{where}: shots {shots!r}: expected a whole number >= 0")
        kw["shots"] = shots
    if "weight" in values:
        w = values["weight"]
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0 or w != w or w == float("inf"):
            raise SaeMergeError(f"{where}: weight {w!r}: expected a positive number")
        kw["weight"] = float(w)
    kw.setdefault("data", name)
    kw.setdefault("pool_splits", ("train", "validation"))
    for split in (*kw["pool_splits"], *([kw["shot_split"]] if "shot_split" in kw else [])):
        if split not in SPLITS:
            raise unknown_name(f"split in {where}:", split, SPLITS)
    if "test" in kw["pool_splits"]:
        raise SaeMergeError(f"{where}: pool_splits may not name test (optimisation sets never draw from it)")
    if kw.get("shot_order", "random") not in SHOT_ORDERS:
        raise unknown_name(f"shot_order in {where}:", kw["shot_order"], SHOT_ORDERS)
    if kw.get("shots", 0) and "shot_split" not in kw:
        raise SaeMergeError(f"{where}: shots {kw['shots']} needs shot_split (the split the shots come from)")
    if kw.get("split_overrides") is not None and kw["split_overrides"] not in SPLIT_OVERRIDES:
        raise unknown_name(f"split_overrides in {where}:", kw["split_overrides"], SPLIT_OVERRIDES)
    if ("split_tasks" in kw or "split_overrides" in kw) and "split_by" not in kw:
        raise SaeMergeError(f"{where}: split_tasks/split_overrides need split_by (the field to split on)")
    if "split_tasks" in kw and "{value}" not in kw["split_tasks"]:
        raise SaeMergeError(f"{where}: split_tasks {kw['split_tasks']!r} must contain {{value}}")
    if yaml_path is None and "split_tasks" not in kw:
        raise SaeMergeError(f"{where}: task {name} has no YAML (and no split_tasks)")
    if "metric" not in kw or "filter" not in kw:
        metric, filt = default_metric(yaml_path, kw.get("split_tasks"))
        kw.setdefault("metric", metric)
        kw.setdefault("filter", filt)
    return TaskSpec(name=name, yaml=yaml_path, source=source, sidecar=sidecar, **kw)


def read_task_yaml(path: Path) -> dict[str, Any]:
    """A task YAML with its includes merged, ``!function`` tags left unresolved (no code runs)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        return load_yaml(path, resolve_func=False, recursive=True)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SaeMergeError(f"{path}: not a readable task YAML ({str(exc).splitlines()[0]})") from None


def default_metric(yaml_path: Path | None, split_tasks: str | None) -> tuple[str, str]:
    """The YAML's first metric and first filter (``none`` without a ``filter_list``)."""
    if yaml_path is None:
        return "exact_match", "none"  # split_tasks: the sidecar names them (checked when built)
    cfg = read_task_yaml(yaml_path)
    metrics = cfg.get("metric_list") or []
    metric = metrics[0].get("metric") if metrics and isinstance(metrics[0], dict) else None
    if not isinstance(metric, str):
        metric = {"multiple_choice": "acc", "loglikelihood": "acc"}.get(str(cfg.get("output_type")), "exact_match")
    filters = cfg.get("filter_list") or []
    filt = filters[0].get("name", "none") if filters and isinstance(filters[0], dict) else "none"
    return metric, str(filt)


# -- the installed lm-eval's tasks --------------------------------------------------------------
@functools.cache
def installed_tasks() -> dict[str, Path]:
    """Task name -> YAML of every task the installed lm-eval ships.

    lm-eval's index of its ~13k YAMLs takes about 10 s; it is kept once per process and, across
    processes (every evaluate step is one), in the download cache, keyed by lm-eval's version and
    install path (an entry whose file is gone rebuilds it).
    """
    import hashlib
    import json
    from importlib.metadata import version

    from saemerge.cache.downloads import cache_root

    root = _lm_eval_tasks_dir()
    key = hashlib.sha256(f"{version('lm_eval')}:{root}".encode()).hexdigest()[:16]
    path = cache_root() / "lm-eval-index" / f"{key}.json"
    try:
        index = {n: Path(p) for n, p in json.loads(path.read_text()).items()}
        if index and all(p.is_file() for p in list(index.values())[:50]):
            return index
    except (OSError, ValueError, AttributeError):
        pass
    from lm_eval.tasks import TaskManager

    from saemerge.evaluate.evaluator import quiet_lm_eval

    quiet_lm_eval()
    entries = TaskManager(include_defaults=True).task_index
    index = {n: Path(e.yaml_path) for n, e in entries.items() if e.yaml_path and str(e.kind).endswith("TASK")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({n: str(p) for n, p in index.items()}))
        tmp.replace(path)
    except OSError:
        log.debug("could not cache lm-eval's task index at %s", path)
    return index


def _yaml_tasks(root: Path) -> dict[str, list[Path]]:
    """Task name -> the YAMLs under `root` defining it (``task:`` of each non-sidecar YAML)."""
    out: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*.yaml")):
        if path.name.endswith(SIDECAR_SUFFIX) or any(p.startswith(".") for p in path.relative_to(root).parts):
            continue
        cfg = read_task_yaml(path)
        task = cfg.get("task")
        if isinstance(task, str):
            out.setdefault(task, []).append(path)
    return out


def scan_dir(root: Path, source: str, *, reserved: Iterable[str] = (), installed: bool = True) -> dict[str, TaskSpec]:
    """Every task of a task directory (YAMLs + sidecars), checked as a whole.

    Args:
        root: the directory.
        source: ``shipped`` or ``user``.
        reserved: names a YAML here may not define (the shipped tasks, for a user's directory).
        installed: refuse YAMLs naming an installed lm-eval task (indexes lm-eval's tasks).
    """
    root = Path(root)
    if not root.is_dir():
        raise SaeMergeError(f"{root}: no such task directory")
    defined = _yaml_tasks(root)
    for name, paths in defined.items():
        if len(paths) > 1:
            raise SaeMergeError(f"{paths[1]}: task {name} is defined twice (also in {paths[0]})")
        if name in set(reserved):
            raise SaeMergeError(f"{paths[0]}: task {name} clashes with a task shipped with saemerge; rename it")
    if installed and source == "user" and defined:
        clash = sorted(set(defined) & set(installed_tasks()))
        if clash:
            raise SaeMergeError(
                f"{defined[clash[0]][0]}: task {clash[0]} clashes with an installed lm-eval task; rename it"
            )
    sidecars: dict[str, Path] = {}
    for path in sorted(root.rglob(f"*{SIDECAR_SUFFIX}")):
        name = path.name[: -len(SIDECAR_SUFFIX)]
        if name in sidecars:
            raise SaeMergeError(f"{path}: a second sidecar for task {name} (also {sidecars[name]})")
        sidecars[name] = path
    for name, paths in defined.items():
        if name not in sidecars:
            raise SaeMergeError(f"{paths[0]}: task {name} has no sidecar {name}{SIDECAR_SUFFIX}")
    specs = {}
    for name, side in sidecars.items():
        yaml_path = defined[name][0] if name in defined else None
        task_source = source
        if yaml_path is None:
            values = _load_mapping(side)
            if "split_tasks" not in values:
                if not installed or name not in installed_tasks():
                    raise SaeMergeError(
                        f"{side}: no task {name}: no YAML here defines it and the installed lm-eval has none"
                    )
                yaml_path, task_source = installed_tasks()[name], "lm_eval"
        specs[name] = parse_sidecar(
            name, _load_mapping(side), str(side), yaml_path=yaml_path, source=task_source, sidecar=side
        )
    return specs


@functools.cache
def shipped_tasks() -> dict[str, TaskSpec]:
    """The tasks shipped with saemerge (``tasks/``), read as any task directory is."""
    return scan_dir(TASKS_DIR, "shipped", installed=False)


# -- the task set -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSet:
    """A run's tasks, in the order the run names them.

    Attributes:
        specs: one spec per task.
        user_dir: the user's task directory (local), or None.
        chat: the chat settings (``apply_chat_template``, ``system_instruction``,
            ``fewshot_as_multiturn``) of the task directory's ``saemerge.yaml``; off without one.
    """

    specs: tuple[TaskSpec, ...]
    user_dir: Path | None = None
    chat: Mapping[str, Any] = field(default_factory=lambda: dict(NO_CHAT))

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def __getitem__(self, name: str) -> TaskSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise unknown_name("task", name, self.names)

    @property
    def weights(self) -> dict[str, float]:
        return {s.name: s.weight for s in self.specs}

    @property
    def data_dirs(self) -> list[str]:
        return [s.data for s in self.specs]

    def yaml_for(self, name: str) -> Path:
        """The YAML of a task named by ``split_tasks``: in the user's directory, else installed."""
        if self.user_dir is not None:
            found = _yaml_tasks(self.user_dir).get(name)
            if found:
                return found[0]
        shipped = shipped_tasks().get(name)
        if shipped is not None and shipped.yaml is not None:
            return shipped.yaml
        if name in installed_tasks():
            return installed_tasks()[name]
        raise SaeMergeError(f"split_tasks: no task {name} (not in the task directory, not an installed lm-eval task)")

    def record(self) -> dict[str, dict[str, Any]]:
        """What ``run.json`` records of each task: where it came from, its sidecar values."""
        out = {}
        for s in self.specs:
            values = {f.name: getattr(s, f.name) for f in fields(s) if f.name not in ("name", "yaml", "sidecar")}
            values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
            out[s.name] = {**values, "yaml": _shown(s.yaml, self.user_dir)}
        return out


def _shown(path: Path | None, user_dir: Path | None) -> str | None:
    if path is None:
        return None
    for base, label in ((user_dir, "tasks_uri"), (TASKS_DIR, "saemerge"), (_lm_eval_tasks_dir(), "lm_eval")):
        if base is not None and path.is_relative_to(base):
            return f"{label}:{path.relative_to(base).as_posix()}"
    return str(path)


def _lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def resolve_tasks(names: Iterable[str] | str | TaskSet, user_dir: str | Path | None = None) -> TaskSet:
    """The task set of these names (a list or comma-separated), in order, without repeats.

    Raises:
        SaeMergeError: no name, an unknown name (with the closest known ones), or a bad task
            directory (see :func:`scan_dir`).
    """
    if isinstance(names, TaskSet):
        return names
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    wanted = list(dict.fromkeys(n for n in names if n))
    if not wanted:
        raise SaeMergeError("tasks: no task given")
    shipped = shipped_tasks()
    user = scan_dir(Path(user_dir), "user", reserved=shipped) if user_dir else {}
    chat = read_chat(Path(user_dir)) if user_dir else dict(NO_CHAT)
    specs = []
    for name in wanted:
        if name in user:
            specs.append(user[name])
        elif name in shipped:
            specs.append(shipped[name])
        else:
            specs.append(_installed_spec(name, [*user, *shipped]))
    return TaskSet(tuple(specs), Path(user_dir) if user_dir else None, chat)


def read_chat(root: Path) -> dict[str, Any]:
    """The chat settings of a task directory's ``saemerge.yaml`` (all off without the file).

    Raises:
        SaeMergeError: an unknown key or a value of the wrong type, naming the file.
    """
    path = root / SETTINGS_FILE
    if not path.is_file():
        return dict(NO_CHAT)
    values = _load_mapping(path)
    out: dict[str, Any] = dict(NO_CHAT)
    for key, value in values.items():
        if key not in CHAT_KEYS:
            raise unknown_name(f"setting in {path}:", str(key), CHAT_KEYS)
        if value is not None and not isinstance(value, CHAT_KEYS[key]):
            raise SaeMergeError(f"{path}: {key} {value!r}: expected {CHAT_KEYS[key].__name__}")
        out[key] = value
    if out["fewshot_as_multiturn"] and not out["apply_chat_template"]:
        raise SaeMergeError(f"{path}: fewshot_as_multiturn needs apply_chat_template")
    return out


def _installed_spec(name: str, local: list[str]) -> TaskSpec:
    tasks = installed_tasks()
    if name not in tasks:
        import difflib

        close = difflib.get_close_matches(name, [*local, *tasks], n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise SaeMergeError(
            f"unknown task {name!r}{hint} (not in the task directory, not shipped ({', '.join(sorted(local))}), "
            "not an installed lm-eval task)"
        )
    return parse_sidecar(name, {}, f"lm-eval task {name}", yaml_path=tasks[name], source="lm_eval", sidecar=None)


def get_task(name: str) -> TaskSpec:
    """One task by name, from the shipped tasks or the installed lm-eval's (no user directory)."""
    return resolve_tasks([name]).specs[0]


def parse_tasks(tasks: Iterable[str | TaskSpec] | str | TaskSet) -> list[TaskSpec]:
    """Task specs from a task set, specs, or names (shipped or installed), in order, without repeats."""
    if isinstance(tasks, TaskSet):
        return list(tasks.specs)
    if isinstance(tasks, str):
        return list(resolve_tasks(tasks).specs)
    items = list(tasks)
    specs = [t for t in items if isinstance(t, TaskSpec)]
    if items and len(specs) == len(items):
        return list({t.name: t for t in specs}.values())
    return list(resolve_tasks([str(t) for t in items]).specs)
