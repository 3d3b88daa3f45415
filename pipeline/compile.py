"""Compile a search's pipeline to the YAML users upload in the Kubeflow UI, and measure it.

Argo stores a whole workflow in one Kubernetes object (etcd's limit is about 1.5 MB), so the
compiled size and task count are printed with every compile.
"""

import ast
import functools
import hashlib
import importlib
import inspect
import json
import re
import textwrap
from collections import defaultdict
from pathlib import Path

import yaml
from kfp import compiler

from saemerge.pipeline.common import CompileOptions
from saemerge.pipeline.searches import SEARCHES, get_search

GOLDEN = SEARCHES["sae"].golden
ARGO_OBJECT_LIMIT = 1_500_000


def task_counts(spec: dict) -> dict:
    """Tasks per DAG of a compiled pipeline: the root, each nested pipeline, and the total run size.

    `tasks_in_run` counts container tasks a run executes for one item per loop, nested
    DAGs expanded (a ParallelFor body counts once).
    """
    components = spec["components"]

    def expand(dag: dict) -> int:
        total = 0
        for task in dag.get("tasks", {}).values():
            comp = components[task["componentRef"]["name"]]
            total += expand(comp["dag"]) if "dag" in comp else 1
        return total

    root = spec["root"]["dag"]
    return {
        "root_tasks": len(root["tasks"]),
        "components": len(components),
        "tasks_in_run": expand(root),
    }


def _suffixless(name: str) -> str:
    return re.sub(r"(-\d+)+$", "", name)


def canonicalize(spec: dict, platform: dict | None) -> None:
    """Give components and executors names that do not change from one compile to the next.

    kfp numbers the copies of a component (comp-evaluate-2, -3, ...) and their executors in
    an order that varies between compiles (it goes through protobuf maps), and sometimes
    points two copies at one executor, leaving an identical one unused. Here components are
    renamed by a walk of the DAG in task-name order, and executors are merged by content
    (container spec plus Kubernetes platform config) and named in the same walk, so the same
    pipeline always compiles to the same bytes and the golden file's diffs stay meaningful.
    """
    executors = spec["deploymentSpec"]["executors"]
    pexec = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if platform else {}
    comp_map: dict[str, str] = {}
    exec_by_content: dict[str, str] = {}
    new_executors: dict[str, dict] = {}
    new_pexec: dict[str, dict] = {}
    counters: dict[str, int] = defaultdict(int)

    def fresh(name: str) -> str:
        base = _suffixless(name)
        counters[base] += 1
        return base if counters[base] == 1 else f"{base}-{counters[base]}"

    def executor_name(label: str) -> str:
        content = json.dumps([executors[label], pexec.get(label)], sort_keys=True)
        if content not in exec_by_content:
            name = exec_by_content[content] = fresh(label)
            new_executors[name] = executors[label]
            if label in pexec:
                new_pexec[name] = pexec[label]
        return exec_by_content[content]

    def visit(dag: dict) -> None:
        for task_name in sorted(dag.get("tasks", {})):
            task = dag["tasks"][task_name]
            old = task["componentRef"]["name"]
            if old not in comp_map:
                comp_map[old] = fresh(old)
                comp = spec["components"][old]
                if "executorLabel" in comp:
                    comp["executorLabel"] = executor_name(comp["executorLabel"])
                if "dag" in comp:
                    visit(comp["dag"])
            task["componentRef"]["name"] = comp_map[old]

    visit(spec["root"]["dag"])
    spec["components"] = {comp_map[old]: comp for old, comp in spec["components"].items() if old in comp_map}
    spec["deploymentSpec"]["executors"] = new_executors
    if platform:
        platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"] = new_pexec
    share_identical_components(spec)


STEPS_PACKAGE = "saemerge.components"


def delegate_steps(spec: dict) -> None:
    """Ship each step as its signature and one call into the image's ``saemerge.components``.

    A lightweight component carries its function's whole source, and the KFP backend copies
    every task's command into the Argo Workflow's status several times (the pod spec patch of
    its driver, Pod and Retry nodes, and the container input), so the source of every step is
    paid for on every task of a run. The images install the same ``components/`` (as
    ``saemerge.components``), so the compiled command keeps only what kfp's executor reads
    (the imports kfp adds and the signature) and a body that calls the installed function
    with its arguments::

        def prune(run_uri: str, ..., model: Output[Model]) -> str:
            return __import__("saemerge.components.prune", fromlist=["prune"]).prune(**locals())

    The step's code therefore comes from the image, as the library code it calls always did;
    kfp.local runs the same command against the installed package. A step that is not
    ``components/<name>.py``'s function ``<name>``, or whose compiled signature differs from
    the installed one, fails the compile.
    """
    for label, executor in spec["deploymentSpec"]["executors"].items():
        container = executor.get("container", {})
        args = container.get("args", [])
        if "--function_to_execute" not in args:
            continue
        name = args[args.index("--function_to_execute") + 1]
        container["command"] = [_trimmed(_delegated(text, name, label)) for text in container.get("command", [])]


# What kfp writes into every lightweight step that a delegated step does without: the launch
# script's alignment (runs of spaces, blank lines) and the imports of kfp and dsl (the signature
# takes its names from ``from kfp.dsl import *`` and ``from typing import *``, the body none).
# Every byte of a step's command is paid for once per task and copy in the Workflow's status.
_UNUSED_IMPORTS = "\nimport kfp\nfrom kfp import dsl\n"


def _trimmed(text: str) -> str:
    if "-m kfp.dsl.executor_main" in text:  # sh -ec SCRIPT: same words, single spaces
        return re.sub(r"\n{2,}", "\n", re.sub(r" {2,}", " ", text))
    if text.startswith(_UNUSED_IMPORTS) and "return __import__(" in text:
        rest = text[len(_UNUSED_IMPORTS) :]
        if "dsl." not in rest.replace("from kfp.dsl import", "") and "kfp." not in rest.replace("kfp.dsl import", ""):
            return "\n" + rest
    return text


def _delegated(text: str, name: str, label: str) -> str:
    """`text` with the body of its function `name` replaced by the call into the installed step
    (everything else byte for byte, so the result does not depend on the Python version)."""
    if "\ndef " not in text or "import kfp" not in text:
        return text
    fn = next(
        (n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == name),
        None,
    )
    if fn is None:
        raise ValueError(f"{label}: the embedded source defines no function {name!r}")
    _check_installed(fn, name, label)
    first = fn.body[0]
    lines = text.splitlines(keepends=True)
    if first.lineno == fn.lineno or fn.end_lineno is None:
        raise ValueError(f"{label}: {name}'s body must start on its own line")
    indent = " " * first.col_offset
    call = f'{indent}return __import__("{STEPS_PACKAGE}",fromlist=["run"]).run("{name}",locals(),"{code_stamp()}")\n'
    lines[first.lineno - 1 : fn.end_lineno] = [call]
    return "".join(lines)


# The code stamp in every delegated step's command (see code_stamp); tests compare goldens without it.
CODE_STAMP = re.compile(r'(locals\(\),\\?")[0-9a-f]{12}')
_CODE_SUFFIXES = (".py", ".yaml", ".yml", ".json")


def mask_code_stamp(text: str) -> str:
    """`text` (a compiled pipeline) with every code stamp replaced by zeros: what goldens compare."""
    return CODE_STAMP.sub(lambda m: m.group(1) + "0" * 12, text)


@functools.lru_cache(maxsize=1)
def code_stamp() -> str:
    """A hash (12 hex digits) of the code a step runs: :func:`code_hash` of :func:`code_files`.

    KFP's cache key is a task's input values, output specs, image *string* and command
    (``GenerateCacheKey`` in ``backend/src/v2/cacheutils/cache.go``, 2.14.0 to 2.17.0). A
    delegated step's command is the same whatever the code, and an image tag can be rebuilt
    with other code, so every step's command carries this stamp: code that changed gives every
    task a new key. Not the commit: a commit that changes no step code keeps the keys (and the
    goldens); not the version alone: code changes between versions.
    """
    return code_hash((name, path.read_bytes()) for name, path in code_files())


def code_files() -> list[tuple[str, Path]]:
    """Every source and data file of the library and the steps (``saemerge``,
    ``saemerge.components``), as (package/relative path, path), in name order; the same files
    whether installed as a wheel (components/ and pipeline/ inside saemerge/) or from a
    checkout. pipeline/ is the compiler, not a step's code."""
    found = []
    for package in ("saemerge", STEPS_PACKAGE):
        for root in importlib.import_module(package).__path__:
            base = Path(root)
            for path in base.rglob("*"):
                rel = path.relative_to(base)
                inside = package == "saemerge" and rel.parts[0] in ("components", "pipeline")
                if path.suffix in _CODE_SUFFIXES and path.is_file() and "__pycache__" not in rel.parts and not inside:
                    found.append((f"{package}/{rel.as_posix()}", path))
    return sorted(found)


def code_hash(files) -> str:
    """SHA-256 over (name, bytes) pairs, names NUL-terminated; the first 12 hex digits."""
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:12]


def _check_installed(fn: ast.FunctionDef, name: str, label: str) -> None:
    """The installed ``saemerge.components.<name>.<name>`` has the signature kfp compiled."""
    module_name = f"{STEPS_PACKAGE}.{name}"
    try:
        installed = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        raise ValueError(f"{label}: every step must be {module_name}.{name} (components/{name}.py)") from None
    ref = ast.parse(textwrap.dedent(inspect.getsource(installed))).body[0]
    if not isinstance(ref, ast.FunctionDef) or _signature(ref) != _signature(fn):
        raise ValueError(f"{label}: the compiled signature of {name} differs from {module_name}'s")


def _signature(fn: ast.FunctionDef) -> tuple[str, str]:
    return ast.dump(fn.args), ast.dump(fn.returns) if fn.returns else ""


def _dags(spec: dict):
    yield spec["root"]["dag"]
    for comp in spec["components"].values():
        if "dag" in comp:
            yield comp["dag"]


def share_identical_components(spec: dict) -> None:
    """Let tasks share one component where kfp emitted identical copies.

    kfp gives every call of a component its own copy (comp-evaluate, comp-evaluate-2, ...),
    and every call of the generation pipeline its own copy of the whole generation DAG, so
    the spec (and the Argo Workflow the backend makes of it, one template per component)
    grows with every generation. The IR lets many tasks reference one component (the
    backend's compiler visits each component once: backend/src/v2/compiler/visitor.go), so
    identical copies are merged, leaves first; a generation DAG whose tasks now reference
    the same components as the first generation's is then merged with it too.
    """
    components = spec["components"]
    while True:
        first_by_content: dict[str, str] = {}
        alias: dict[str, str] = {}
        for name in sorted(components, key=_name_order):
            key = json.dumps(components[name], sort_keys=True)
            if key in first_by_content:
                alias[name] = first_by_content[key]
            else:
                first_by_content[key] = name
        if not alias:
            return
        for dag in _dags(spec):
            for task in dag.get("tasks", {}).values():
                ref = task["componentRef"]
                ref["name"] = alias.get(ref["name"], ref["name"])
        for name in alias:
            del components[name]


def drop_step_descriptions(spec: dict) -> None:
    """Remove the descriptions kfp copies from each step's docstring (``Args:``) into its component spec.

    The KFP backend writes a task's component spec into the Argo Workflow several times (the
    driver's inputs, the pod-spec patch) for every task of a run: about 32 KB of a 24-generation
    SAE run as stored. The steps' documentation stays in ``components/``; the pipeline's own
    parameters (``root``), whose descriptions the Kubeflow run form shows, keep theirs.
    """
    for comp in spec["components"].values():
        for side in ("inputDefinitions", "outputDefinitions"):
            for kind in ("parameters", "artifacts"):
                for definition in comp.get(side, {}).get(kind, {}).values():
                    definition.pop("description", None)


def set_caching(spec: dict, enabled: bool) -> None:
    """Turn KFP's step cache on or off in every task of every DAG (generations included).

    A run started from a pipeline version takes its caching from the version's tasks
    (``cachingOptions.enableCache``, read by the driver per task); kfp.Client's
    ``enable_caching`` is applied only to a package it is handed, and then only to the root
    DAG's tasks, so ``--no-cache`` is compiled into the version instead.
    """
    for dag in _dags(spec):
        for task in dag.get("tasks", {}).values():
            task["cachingOptions"] = {"enableCache": enabled}


def _name_order(name: str) -> tuple[str, int]:
    """comp-x, comp-x-2, comp-x-3, ...: the first copy first."""
    m = re.match(r"^(.*?)(?:-(\d+))?$", name)
    return (m.group(1), int(m.group(2) or 1))


def _sorted_header(text: str) -> str:
    """kfp's header comment lists parameter defaults; print dict defaults with sorted keys."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        m = re.match(r"^(#.*\[Default: )(\{.*\})(\]\s*)$", line)
        if m:
            line = m.group(1) + repr(dict(sorted(ast.literal_eval(m.group(2)).items()))) + m.group(3)
        lines.append(line)
    return "\n".join(lines) + "\n"


def compile_pipeline(out: Path, options: CompileOptions = CompileOptions(), *, workflow_size: bool = False) -> dict:
    """Write the compiled pipeline to `out` (deterministic bytes); return its size and task counts.

    Args:
        workflow_size: also estimate the Argo Workflow the KFP backend makes of it, compiled and
            at the end of a run (:mod:`saemerge.pipeline.workflow_size`; a few seconds).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(get_search(options.search).build(options), str(out))
    raw = out.read_text()
    docs = list(yaml.safe_load_all(raw))
    spec, platform = docs[0], (docs[1] if len(docs) > 1 else None)
    delegate_steps(spec)
    drop_step_descriptions(spec)
    canonicalize(spec, platform)
    if options.caching is not None:
        set_caching(spec, options.caching)
    body = yaml.safe_dump_all([d for d in (spec, platform) if d is not None], sort_keys=True, width=10_000)
    out.write_text(_sorted_header(raw) + body)
    size = out.stat().st_size
    stats = {
        "bytes": size,
        "share_of_argo_limit": round(size / ARGO_OBJECT_LIMIT, 3),
        "search": options.search,
        "generations": options.steps,
        **task_counts(spec),
    }
    if workflow_size:
        from saemerge.pipeline.workflow_size import report

        estimate = report(spec, platform)
        stats["workflow"] = {
            k: estimate[k]
            for k in (
                "compiled_bytes",
                "runtime_bytes",
                "stored_bytes",
                "failed_attempts",
                "task_results_bytes",
                "backend_commit",
            )
        }
        stats["workflow_text"] = estimate["text"]
    return stats
