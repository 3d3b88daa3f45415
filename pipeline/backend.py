"""What the compiled pipeline needs of the Kubeflow Pipelines backend: the version floor and why.

The floor is the newest of the backend features the pipeline uses (read in
kubeflow/pipelines' own code, tags 2.3.0 to 2.17.0):

- **2.4**: outputs of sub-DAGs (every generation is a nested pipeline that returns its archive);
- **2.5**: ``secretNameParameter`` in every secret mount (kfp-kubernetes writes it; the 2.3 and
  2.4 drivers parse the Kubernetes config strictly, ``util.UnmarshalString`` in
  ``backend/src/v2/cmd/driver/main.go``, and reject the unknown field). The S3 secret is a
  ``secretAsVolume`` (pipeline/common.py): the driver resolves its ``secretNameParameter`` and
  mounts it, a volume named by the secret (``driver.go`` in 2.5.0; ``k8s.go``
  ``extendPodSpecPatch`` in 2.14.0, 2.17.0 and 7b70c7b);
- **2.14**: ``dsl.Collected`` fan-in of *parameters* after a ``ParallelFor`` (every generation
  collects its merges' outputs): the driver's "enable dsl.Collected for parameters & artifacts"
  (kubeflow/pipelines ed828b513a, first in tag 2.14.0; ``resolve.go``). An older driver fails
  the collecting task.

``saemerge submit`` reads the server's version from its healthz endpoint (``tag_name``: the
API server's ``TAG_NAME``, the release tag in released images, ``unknown`` in a custom build)
and refuses a backend below :data:`BACKEND_FLOOR` with one line naming the version found, the
version needed and the feature (:func:`check_backend`). A version it cannot read is let
through with a warning: a custom build may well be new enough.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from saemerge.errors import SaeMergeError


@dataclass(frozen=True)
class BackendFeature:
    since: tuple[int, int]
    what: str


# Oldest first; the floor is the last one's version.
BACKEND_FEATURES = (
    BackendFeature((2, 4), "sub-DAG outputs (each generation returns its archive)"),
    BackendFeature((2, 5), "secretNameParameter in the S3 secret mounts (older drivers reject the field)"),
    BackendFeature((2, 14), "dsl.Collected parameter fan-in after ParallelFor (every generation's merges)"),
)
BACKEND_FLOOR = BACKEND_FEATURES[-1].since


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(n) for n in version)


def parse_backend_version(tag: str | None) -> tuple[int, int, int] | None:
    """``2.14.0``, ``v2.5.0``, ``2.14.0-rc.1`` -> (2, 14, 0); ``unknown``, ``master``, None -> None."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", (tag or "").strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def check_backend(tag: str | None, where: str) -> str | None:
    """Refuse a backend below the floor; return a warning line when its version is unreadable.

    Args:
        tag: the healthz ``tag_name`` the server answered (None: it sent none).
        where: how to name the server in messages (its URL).

    Raises:
        SaeMergeError: the server's version is below :data:`BACKEND_FLOOR`; the one line names
            the version found, the version needed and the feature that needs it.
    """
    found = parse_backend_version(tag)
    floor = version_text(BACKEND_FLOOR)
    if found is None:
        return (
            f"KFP at {where} reports version {tag or '(none)'!r}; cannot check it: the pipeline needs "
            f"KFP {floor} or newer for {BACKEND_FEATURES[-1].what}"
        )
    if found[:2] < BACKEND_FLOOR:
        lacking = [f for f in BACKEND_FEATURES if found[:2] < f.since]
        also = f" (and {len(lacking) - 1} older feature(s): saemerge.pipeline.backend)" if len(lacking) > 1 else ""
        raise SaeMergeError(
            f"KFP at {where} is version {tag}; the pipeline needs KFP {floor} or newer for "
            f"{BACKEND_FEATURES[-1].what}{also}"
        )
    return None
