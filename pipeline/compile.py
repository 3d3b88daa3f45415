"""Compile the SAE pipeline to the YAML users upload in the Kubeflow UI, and measure it.

Argo stores a whole workflow in one Kubernetes object (etcd's limit is about 1.5 MB), so the
compiled size and task count are printed with every compile.
"""

from pathlib import Path

import yaml
from kfp import compiler

from saemerge.pipeline.sae_pipeline import CompileOptions, build_pipeline

GOLDEN = Path(__file__).with_name("sae_pipeline.yaml")
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


def compile_pipeline(out: Path, options: CompileOptions = CompileOptions()) -> dict:
    """Write the compiled pipeline to `out`; return its size and task counts."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(options), str(out))
    spec = yaml.safe_load(out.read_text())
    size = out.stat().st_size
    return {
        "bytes": size,
        "share_of_argo_limit": round(size / ARGO_OBJECT_LIMIT, 3),
        "generations": options.steps,
        **task_counts(spec),
    }
