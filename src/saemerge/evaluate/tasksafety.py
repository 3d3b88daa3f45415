"""What a task may run, and what its identity is made of.

A task YAML is an input, and lm-eval would run code from it: ``!function`` imports Python (from
the YAML's directory, or, from lm-eval 0.4.12, any importable module), ``class:`` and
``custom_dataset`` are such imports, ``unsafe_code`` metrics execute generated programs, and
``doc_to_text`` templates render in a plain Jinja ``Environment``. The evaluate pod holds the S3
credentials, so by default:

- every template renders in ``jinja2.sandbox.ImmutableSandboxedEnvironment``
  (:func:`sandbox_templates`, patched at lm-eval's one seam, ``lm_eval.utils.env``);
- a ``!function`` may resolve only to the installed lm-eval's own tasks
  (``lm_eval/tasks/**``, e.g. hellaswag's ``utils.process_docs``) or saemerge's task functions
  (:mod:`saemerge.evaluate.taskfns`);
- a task directory may hold no ``.py`` file, an ``include:`` may not leave it, and no task may
  set ``trust_remote_code`` or ``unsafe_code``.

The run parameter ``allow_task_code`` opts in to the rest; what ran is then recorded in
``run.json`` with the sha256 of each code file, and a warning is logged.

:func:`task_files` lists every file a task's config reads (YAMLs, includes, the files its
functions come from): with the sidecar they are the task's part of the evaluator identity.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from saemerge.errors import SaeMergeError
from saemerge.evaluate.taskset import TaskSet
from saemerge.evaluate.taskspec import TASKS_DIR, TaskSpec

log = logging.getLogger(__name__)

# modules a !function may name without the opt-in (saemerge's own task functions)
OWN_MODULES = ("saemerge.evaluate.taskfns",)
CODE_KEYS = ("class", "custom_dataset")
UNSAFE_KEYS = ("trust_remote_code", "unsafe_code")


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent.resolve()


def sandbox_templates() -> None:
    """Render every lm-eval task template in an immutable sandbox (idempotent).

    lm-eval renders ``doc_to_text``/``doc_to_target``/``doc_to_choice`` through the module-level
    ``lm_eval.utils.env``; it is replaced, with the same options and filters, by an
    ``ImmutableSandboxedEnvironment``, which renders ARC's, GSM8K's and MGSM's templates alike
    and refuses ``{{ lipsum.__globals__ }}`` and the like (``jinja2.exceptions.SecurityError``).
    """
    import lm_eval.utils as lm_utils
    from jinja2 import BaseLoader, StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if isinstance(lm_utils.env, ImmutableSandboxedEnvironment):
        return
    env = ImmutableSandboxedEnvironment(loader=BaseLoader, undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters.update(lm_utils.env.filters)
    lm_utils.env = env


@dataclass(frozen=True)
class _Function:
    spec: str
    base_dir: Path


class _Loader(yaml.SafeLoader):
    pass


def _function_ctor(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return _Function(str(loader.construct_scalar(node)), Path(loader.name).parent)  # type: ignore[arg-type]


_Loader.add_constructor("!function", _function_ctor)


@dataclass
class TaskScan:
    """What a task's config refers to.

    Attributes:
        files: every YAML it reads (includes too) and every file its functions come from.
        code: the code files outside lm-eval's tasks and saemerge's own (need the opt-in).
    """

    files: dict[Path, str] = field(default_factory=dict)  # path -> sha256
    code: dict[Path, str] = field(default_factory=dict)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _walk(value: Any, path: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, (*path, str(i)))


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def scan_task(spec: TaskSpec, taskset: TaskSet, *, allow_code: bool = False) -> TaskScan:
    """Every file of a task's config, its functions checked against what may run.

    Raises:
        SaeMergeError: one line naming the task and the file: a function outside lm-eval's
            tasks and saemerge's own, an ``include:`` leaving a user's task directory, a
            ``trust_remote_code``/``unsafe_code`` setting (the last two: without `allow_code`).
    """
    scan = TaskScan()
    yamls = [spec.yaml] if spec.yaml is not None else []
    if spec.split_tasks and taskset.user_dir is not None:
        yamls += [p for p in sorted(taskset.user_dir.rglob("*.yaml")) if not p.name.endswith(".saemerge.yaml")]
    for y in yamls:
        _scan_file(spec, Path(y), taskset.user_dir if spec.source == "user" else None, scan, allow_code)
    if spec.sidecar is not None:
        scan.files[spec.sidecar] = _sha(spec.sidecar)
    return scan


def _scan_file(spec: TaskSpec, path: Path, root: Path | None, scan: TaskScan, allow_code: bool) -> None:
    path = path.resolve()
    if path in scan.files:
        return
    where = f"task {spec.name} ({path})"
    scan.files[path] = _sha(path)
    with path.open("rb") as fh:
        try:
            loader = _Loader(fh)
            loader.name = str(path)
            cfg = loader.get_single_data()
        except yaml.YAMLError as exc:
            raise SaeMergeError(f"{where}: not a readable YAML ({str(exc).splitlines()[0]})") from None
        finally:
            loader.dispose()
    if not isinstance(cfg, dict):
        raise SaeMergeError(f"{where}: expected a mapping")
    for keys, value in _walk(cfg):
        if keys and keys[-1] in UNSAFE_KEYS and value and not allow_code:
            raise SaeMergeError(
                f"{where}: {'.'.join(keys)} is set; task code runs only with the run parameter allow_task_code"
            )
        if isinstance(value, _Function):
            _check_function(spec, value, keys, where, scan, allow_code)
    includes = cfg.get("include") or []
    for inc in includes if isinstance(includes, list) else [includes]:
        target = Path(inc) if Path(str(inc)).is_absolute() else path.parent / str(inc)
        if root is not None and not _inside(target, root):
            raise SaeMergeError(f"{where}: include {inc!r} leaves the task directory")
        if not target.is_file():
            raise SaeMergeError(f"{where}: include {inc!r}: no such file")
        _scan_file(spec, target, root, scan, allow_code)


def _check_function(spec: TaskSpec, fn: _Function, keys: tuple[str, ...], where: str, scan: TaskScan, allow: bool):
    """lm-eval's rule (``_import_func_in_yml``): a file ``<module path>.py`` beside the YAML first,
    else an importable module; either must be lm-eval's tasks or saemerge's own."""
    mod, _, name = fn.spec.rpartition(".")
    key = ".".join(keys) or "?"
    kind = f"{keys[0]}: " if keys and keys[0] in CODE_KEYS else ""
    local = (fn.base_dir / f"{mod.replace('.', '/')}.py").resolve()
    if mod and local.is_file():
        scan.files[local] = _sha(local)
        if _inside(local, lm_eval_tasks_dir()) or _inside(local, TASKS_DIR):
            return
        if not allow:
            raise SaeMergeError(
                f"{where}: {kind}{key}: !function {fn.spec} runs {local}, code from the task directory; "
                "allowed only with the run parameter allow_task_code"
            )
        scan.code[local] = scan.files[local]
        return
    if mod.startswith("lm_eval.tasks.") or mod in OWN_MODULES:
        found = importlib.util.find_spec(mod) if mod else None
        if found is not None and found.origin and Path(found.origin).is_file():
            scan.files[Path(found.origin)] = _sha(Path(found.origin))
        return
    if not allow:
        raise SaeMergeError(
            f"{where}: {kind}{key}: !function {fn.spec} resolves outside lm-eval's tasks and saemerge's "
            "task functions; allowed only with the run parameter allow_task_code"
        )
    try:
        found = importlib.util.find_spec(mod) if mod else None
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise SaeMergeError(f"{where}: !function {fn.spec}: no module {mod!r}")
    origin = Path(found.origin) if found.origin and Path(found.origin).is_file() else None
    if origin is not None:
        scan.files[origin] = scan.code[origin] = _sha(origin)
    else:  # a built-in module: no file to hash; its name and the interpreter identify it
        scan.code[Path(f"<module {found.name}>")] = hashlib.sha256(found.name.encode()).hexdigest()


def check_task_safety(taskset: TaskSet, *, allow_code: bool = False) -> dict[str, dict[str, str]]:
    """Check every task of the set; returns ``{task: {code file: sha256}}`` of the code the opt-in lets run.

    Raises:
        SaeMergeError: a ``.py`` file in the user's task directory (without `allow_code`), or
            what :func:`scan_task` refuses.
    """
    code: dict[str, dict[str, str]] = {}
    if taskset.user_dir is not None:
        for py in sorted(Path(taskset.user_dir).rglob("*.py")):
            if not allow_code:
                raise SaeMergeError(
                    f"{py}: a Python file in the task directory; task code runs only with the run "
                    "parameter allow_task_code"
                )
    for spec in taskset:
        scan = scan_task(spec, taskset, allow_code=allow_code)
        if scan.code:
            code[spec.name] = {str(p): h for p, h in sorted(scan.code.items())}
    if code:
        log.warning(
            "allow_task_code: tasks %s run code from their task directory: %s",
            ", ".join(code),
            "; ".join(f"{p} sha256 {h[:12]}" for c in code.values() for p, h in c.items()),
        )
    return code


def task_identity(spec: TaskSpec, taskset: TaskSet) -> dict[str, Any]:
    """A task's part of the evaluator identity: its sidecar values and every file its config reads."""
    scan = scan_task(spec, taskset, allow_code=True)
    values = taskset.record()[spec.name]
    values.pop("yaml", None)
    files = sorted(scan.files.values())
    return {"sidecar": values, "files": hashlib.sha256("".join(files).encode()).hexdigest()}
