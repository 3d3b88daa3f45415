"""The report `saemerge compile` prints: compiled and end-of-run sizes against etcd's limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from saemerge.pipeline.workflow_size.compiler import estimate_compiled
from saemerge.pipeline.workflow_size.limits import ARGO_COMMIT, ARGO_COMPRESS_ABOVE, BACKEND_COMMIT, ETCD_LIMIT
from saemerge.pipeline.workflow_size.runtime import estimate_runtime


def _share(n: int, limit: int) -> float:
    return round(n / limit, 3)


def report(
    spec: dict, platform: dict | None = None, run_root: Path | None = None, limit: int = ETCD_LIMIT, **runtime: Any
) -> dict:
    """Compiled and end-of-run Workflow sizes, their share of `limit`, and a one-line summary.

    `runtime` goes to :func:`estimate_runtime` (``archive_size``, ``experts``, ``params``,
    ``retries``).
    """
    compiled = estimate_compiled(spec, platform)
    run = estimate_runtime(spec, platform, run_root, **runtime)
    generations = sum(
        1
        for t in spec["root"]["dag"].get("tasks", {}).values()
        if "dag" in spec["components"].get(t["componentRef"]["name"], {}) and "parameterIterator" not in t
    )
    line = (
        f"Argo Workflow (KFP backend {BACKEND_COMMIT[:7]}): compiled ~{compiled['bytes'] / 1e3:.0f} KB "
        f"({_share(compiled['bytes'], limit):.0%} of {limit / 1e6:.1f} MB); end of run ~{run['bytes'] / 1e6:.1f} MB "
        f"uncompressed ({_share(run['bytes'], limit):.0%}, {run['nodes']} nodes, "
        f"{run['failed_attempts']} failed attempt(s) retried), "
        f"~{run['stored_bytes'] / 1e3:.0f} KB as Argo stores it"
        + (" (nodes gzipped)" if run["stored_bytes"] < run["bytes"] else "")
    )
    return {
        "compiled_bytes": compiled["bytes"],
        "compiled_share": _share(compiled["bytes"], limit),
        "runtime_bytes": run["bytes"],
        "runtime_share": _share(run["bytes"], limit),
        "failed_attempts": run["failed_attempts"],
        "task_results_bytes": run["task_results_bytes"],
        "stored_bytes": run["stored_bytes"],
        "stored_share": _share(run["stored_bytes"], limit),
        "argo_max_workflow_size": ARGO_COMPRESS_ABOVE,
        "limit": limit,
        "nested_dags": generations,
        "compiled": compiled,
        "runtime": run,
        "backend_commit": BACKEND_COMMIT,
        "argo_commit": ARGO_COMMIT,
        "text": line,
    }
