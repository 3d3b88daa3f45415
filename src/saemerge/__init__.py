"""saemerge: Sparsity-Aware Evolution (SAE) for merging LLM experts, run as a Kubeflow pipeline."""

from __future__ import annotations

__version__ = "0.1.0"


def commit() -> str:
    """The git commit of this code: the image's (``SAEMERGE_COMMIT``, set when it was built), else
    the checkout's this package is imported from (``-dirty`` with uncommitted changes), else unknown."""
    import os
    import subprocess
    from pathlib import Path

    baked = os.environ.get("SAEMERGE_COMMIT")
    if baked:
        return baked
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def pipeline_images() -> dict[str, str]:
    """The run's images by flavour (``NAME@DIGEST``), where the runner gives them as the JSON
    object ``SAEMERGE_IMAGES``; empty where it does not."""
    import json
    import os

    try:
        found = json.loads(os.environ.get("SAEMERGE_IMAGES") or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def image() -> dict | None:
    """The saemerge image this process runs in, or None outside one: its flavour, version and
    commit (baked in when it was built) and its reference where the runner gives it."""
    import os

    flavour = os.environ.get("SAEMERGE_IMAGE_FLAVOUR")
    if not flavour:
        return None
    return {"flavour": flavour, "version": __version__, "commit": commit(), "ref": pipeline_images().get(flavour)}


def version_line() -> str:
    """``saemerge --version``: the version, the commit, and the image when run in one."""
    line = f"saemerge {__version__} (commit {commit()})"
    found = image()
    return line if found is None else f"{line}; {found['flavour']} image"
