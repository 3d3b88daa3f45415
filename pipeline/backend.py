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

``saemerge submit`` finds the backend's version where it can (:func:`backend_version`):

1. healthz ``tag_name`` (the API server's ``TAG_NAME``): the release tag from 2.16.0 on; the
   release builds of 2.5 to 2.15 set none and report ``unknown`` (kubeflow/pipelines 94841d6c85,
   first in 2.16.0; ``backend/src/apiserver/main.go``), so it cannot see 2.14 or 2.15;
2. with a kube context, the tags of the API server's, driver's and launcher's images in the
   ``ml-pipeline`` Deployment (:mod:`saemerge.pipeline.kube`): the lowest one counts (the
   driver is what resolves ``dsl.Collected``);
3. the version the user asserts (``--kfp-version``), where neither is known.

A backend below :data:`BACKEND_FLOOR` is refused with one line naming the version found, where
it was found, the version needed and the feature (:func:`check_backend`); a version that cannot
be known is said in one plain line, and the submit goes on.
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


@dataclass(frozen=True)
class FoundVersion:
    version: tuple[int, int, int]
    text: str  # as found: "2.14.0"
    source: str  # where: "healthz", "the driver image ghcr.io/kubeflow/kfp-driver:2.14.0", "--kfp-version"


def backend_version(
    tag: str | None, images: dict[str, str] | None = None, asserted: str | None = None
) -> FoundVersion | None:
    """The backend's version from the first source that knows it (module doc): healthz's
    `tag`, else the lowest tag of the backend's `images` (name -> reference), else `asserted`.

    Raises:
        SaeMergeError: `asserted` is not a version (``--kfp-version``).
    """
    from saemerge.pipeline.kube import image_tag

    if (found := parse_backend_version(tag)) is not None:
        return FoundVersion(found, str(tag), "healthz")
    known = []
    for name, image in sorted((images or {}).items()):
        text = image_tag(image)
        if (version := parse_backend_version(text)) is not None:
            known.append(FoundVersion(version, str(text), f"the {name} image {image}"))
    if known:
        return min(known, key=lambda f: f.version)
    if asserted is not None:
        if (version := parse_backend_version(asserted)) is None:
            raise SaeMergeError(f"--kfp-version {asserted!r}: expected a version such as 2.14 or 2.15.0")
        return FoundVersion(version, asserted, "--kfp-version")
    return None


def check_backend(
    tag: str | None, where: str, *, images: dict[str, str] | None = None, asserted: str | None = None
) -> str | None:
    """Refuse a backend below the floor; return one plain line when its version cannot be known.

    Args:
        tag: the healthz ``tag_name`` the server answered (None: it sent none).
        where: how to name the server in messages (its URL).
        images: the backend's images read through the Kubernetes API (:func:`~saemerge.pipeline.kube.kfp_images`;
            None: no kube context, {}: not readable).
        asserted: the version the user asserts (``--kfp-version``).

    Raises:
        SaeMergeError: the version found is below :data:`BACKEND_FLOOR`; the one line names
            the version, where it was found, the version needed and the feature that needs it.
    """
    found = backend_version(tag, images, asserted)
    floor = version_text(BACKEND_FLOOR)
    if found is None:
        kube = "no kube context to read its images" if images is None else "its ml-pipeline Deployment was not readable"
        return (
            f"KFP at {where}: its version cannot be known (healthz says {tag or '(none)'!r}, as releases before "
            f"2.16 do; {kube}); the pipeline needs {floor} or newer for {BACKEND_FEATURES[-1].what}: "
            "assert it with --kfp-version"
        )
    if found.version[:2] < BACKEND_FLOOR:
        lacking = [f for f in BACKEND_FEATURES if found.version[:2] < f.since]
        also = f" (and {len(lacking) - 1} older feature(s): saemerge.pipeline.backend)" if len(lacking) > 1 else ""
        seen = "" if found.source == "healthz" else f" ({found.source})"
        raise SaeMergeError(
            f"KFP at {where} is version {found.text}{seen}; the pipeline needs KFP {floor} or newer for "
            f"{BACKEND_FEATURES[-1].what}{also}"
        )
    return None
