"""Refit the compiled-size model on a kubeflow/pipelines checkout (its compiler test data), and the module's command line."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from saemerge.pipeline.workflow_size.compiler import _fit_order, compiled_features
from saemerge.pipeline.workflow_size.gojson import glen


def _git_show(repo: Path, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"HEAD:{path}"], check=True, capture_output=True, text=True
    ).stdout


def _list_files(repo: Path, folder: str) -> tuple[list[str], Any]:
    """Files under `folder` of a checkout, or of a bare clone's HEAD; and a reader for them."""
    if (repo / folder).is_dir():
        return sorted(str(p.relative_to(repo)) for p in (repo / folder).rglob("*") if p.is_file()), lambda path: (
            repo / path
        ).read_text()
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD", folder],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return sorted(out), lambda path: _git_show(repo, path)


def test_data_pairs(repo: Path) -> list[tuple[str, dict, dict | None, dict]]:
    """(name, spec, platform spec, compiled Workflow) for each compiler test pair of a KFP checkout.

    Pairs are matched by file name: ``test_data/sdk_compiled_pipelines/**/X.yaml`` with
    ``test_data/compiled-workflows/X.yaml`` (backend/test/compiler/argo_ginkgo_test.go).
    """
    import yaml

    repo = Path(repo)
    specs, read_spec = _list_files(repo, "test_data/sdk_compiled_pipelines")
    by_name: dict[str, str] = {}
    for path in specs:
        if path.endswith(".yaml"):
            by_name.setdefault(Path(path).name, path)
    workflows, read_wf = _list_files(repo, "test_data/compiled-workflows")
    pairs = []
    for path in workflows:
        name = Path(path).name
        if name not in by_name:
            continue
        docs = [d for d in yaml.safe_load_all(read_spec(by_name[name])) if d]
        pairs.append((name, docs[0], docs[1] if len(docs) > 1 else None, yaml.safe_load(read_wf(path))))
    return pairs


def _lstsq(rows: list[list[float]], target: list[float]) -> list[float]:
    import numpy as np

    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(target, dtype=float), rcond=None)
    return [float(c) for c in coef]


def _errors(rows, target, coef, names) -> dict:
    rel = [abs(sum(c * x for c, x in zip(coef, row)) - y) / y for row, y in zip(rows, target)]
    worst = max(range(len(rel)), key=rel.__getitem__)
    return {
        "pairs": len(rel),
        "mean_rel_error": round(sum(rel) / len(rel), 5),
        "max_rel_error": round(rel[worst], 5),
        "worst": names[worst],
    }


def refit(repo: Path, holdout_every: int = 5) -> dict:
    """Fit :data:`COMPILED_COEFFICIENTS` on a KFP checkout's compiler test data.

    Least squares of the compiled Workflow's JSON bytes on :func:`compiled_features`; the
    errors on all pairs, and on every `holdout_every`-th pair (by name) when fitted on the
    others.
    """
    pairs = test_data_pairs(Path(repo))
    order = _fit_order()
    names, rows, target = [], [], []
    for name, spec, platform, wf in pairs:
        feats = compiled_features(spec, platform)
        names.append(name)
        rows.append([feats[k] for k in order])
        target.append(float(glen(wf)))
    coef = _lstsq(rows, target)
    test = [i for i in range(len(names)) if i % holdout_every == 0]
    train = [i for i in range(len(names)) if i % holdout_every != 0]
    held_coef = _lstsq([rows[i] for i in train], [target[i] for i in train])
    held = _errors([rows[i] for i in test], [target[i] for i in test], held_coef, [names[i] for i in test])
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "commit": commit,
        "coefficients": {k: round(c, 4) for k, c in zip(order, coef)},
        "fit": {**_errors(rows, target, coef, names), "holdout": {"train_pairs": len(train), **held}},
    }
