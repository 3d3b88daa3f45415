"""kfp components of the SAE pipeline, one file each.

Each component is a typed signature plus one call into :mod:`saemerge.steps`, where the
logic lives and is unit-tested without kfp. Imports of the library sit inside the function
bodies, so a light step does not pay for torch or lm-eval. The compiled pipeline does not
ship these bodies: it keeps each signature (what kfp's executor reads) and calls this
package's copy in the image (:func:`saemerge.pipeline.compile.delegate_steps`), so every
component must be the function ``<name>`` of ``components/<name>.py``. Checkpoints never
travel as kfp artifacts: steps pass S3 URIs, and an ``Output[Model]`` is only a pointer for
lineage in the UI. Its ``.uri`` stays the one KFP's launcher assigned under the pipeline root
(rewriting it would make the launcher upload to, or KFP record, the wrong place); the
checkpoint's S3 prefix is in its metadata (``checkpoint_uri``, with the content hash and
figures) and in the small JSON file written at ``.path``
(:func:`saemerge.steps.records.describe_model`).

The functions here are plain Python; :mod:`saemerge.pipeline.sae_pipeline` turns them into
components with the CPU or GPU image chosen at compile time.
"""

import os
import re

# On a cluster the pod's saemerge settings (cache, GPU policy) arrive as one variable, set from
# the pod's ``saemerge.io/env`` annotation (saemerge.pipeline.resources.annotate_env); every
# step imports this package first, so they are in the environment before its code runs.
POD_ENV = "SAEMERGE_POD_ENV"
_NAME = re.compile(r"^SAEMERGE_[A-Z0-9_]+$")


def pod_env(text: str) -> dict:
    """``NAME=value;NAME=value`` -> {NAME: value} (an empty text: none)."""
    pairs = [item.split("=", 1) for item in text.split(";") if item]
    bad = [p[0] for p in pairs if len(p) != 2 or not _NAME.match(p[0])]
    if bad:
        raise ValueError(f"{POD_ENV}: {bad[0]!r} is not NAME=value with a SAEMERGE_ name")
    return dict(pairs)


def format_pod_env(env: dict) -> str:
    """{NAME: value} -> ``NAME=value;NAME=value`` (sorted; values without ';')."""
    if any(";" in str(v) for v in env.values()) or not all(_NAME.match(k) for k in env):
        raise ValueError(f"cannot hand {env} to a step as {POD_ENV}")
    return ";".join(f"{k}={env[k]}" for k in sorted(env))


def check_cache_dir(path: str) -> None:
    """The step's download cache must be writable: make the directory and a probe file in it.

    On a cluster the cache is a volume (``--cache-volume``); a claim whose root is owned by root
    with mode 0755 (the usual state of a fresh volume: KFP sets no fsGroup) cannot be written by
    the step's user, uid 1000, and the step would otherwise fail at its first download with a
    traceback that names neither the volume nor the fix.

    Raises:
        PermissionError: one line naming the directory, its owner and mode, and the fix.
    """
    probe = os.path.join(path, f".saemerge-write-probe-{os.getpid()}")
    try:
        os.makedirs(path, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except PermissionError:
        st = os.stat(path)
        raise PermissionError(
            f"SAEMERGE_CACHE {path}: not writable by this step (uid {os.getuid()}, gid {os.getgid()}; the directory "
            f"is {st.st_uid}:{st.st_gid}, mode {st.st_mode & 0o7777:04o}): KFP sets no fsGroup, so make the claim "
            "writable once (chown 1000:0, or chmod 2775 with group 0) or use --cache-volume emptydir "
            "(docs/cluster-operations.md)"
        ) from None


os.environ.update(_pod := pod_env(os.environ.get(POD_ENV, "")))
if _pod.get("SAEMERGE_CACHE"):  # a cluster's cache volume: stop here, in one line, if it cannot be written
    check_cache_dir(_pod["SAEMERGE_CACHE"])


def run(name: str, arguments: dict, code: str):
    """Call step `name` (``saemerge.components.<name>.<name>``) with its kfp `arguments`: the
    compiled pipeline's body of every step (:func:`saemerge.pipeline.compile.delegate_steps`).

    `code` is the hash of the code the pipeline was compiled with
    (:func:`saemerge.pipeline.compile.code_stamp`); it is there for KFP's cache key, which
    reads the command and not the code an image tag holds.
    """
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{name}"), name)(**arguments)
