"""`saemerge run --local --runner docker`: every step of the compiled pipeline in its image.

kfp.local's ``DockerRunner`` starts each step as a container of the image the compiled YAML
names (the CPU image for the light steps and merges, the GPU image for evaluate and final
evaluate), as a cluster would, with what a pod gets there:

- the host network (``--network host``): the embedded store listens on the loopback, and the
  engine here has no bridge;
- uid 1000 (the images' user, group 0), HOME in the image;
- a read-only root file system: a step writes only to HOME and /tmp (fresh volumes of its own,
  removed with it), the cache volume and kfp's outputs; a write anywhere else fails the step;
- the S3 settings as environment variables, as the cluster's secret gives them: passed through
  the engine's API, never baked into an image, never on a command line, never logged;
- the cache volume at :data:`saemerge.pipeline.resources.CACHE_MOUNT` (``SAEMERGE_CACHE``), a
  named volume kept between runs (:data:`CACHE_VOLUME_ENV`), like the ``pvc:NAME`` cache;
- kfp's outputs in the pipeline root, which kfp bind-mounts at the same path.

The images are the compile defaults (``images/build.sh`` tags them so); a missing image or an
engine that cannot be reached is one line before any step starts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from saemerge.errors import SaeMergeError

# The container user: the images' `saemerge` user (uid 1000, group 0), as the pods run.
CONTAINER_USER = "1000"
# Where a step may write besides the cache volume and kfp's outputs: each a fresh anonymous
# volume (on disk, not in memory: a merge stages a model in /tmp), removed with the container.
SCRATCH = ("/tmp", "/home/saemerge")
# The named volume that holds the step's download cache (SAEMERGE_CACHE) between steps and runs.
CACHE_VOLUME_ENV = "SAEMERGE_DOCKER_CACHE_VOLUME"
DEFAULT_CACHE_VOLUME = "saemerge-cache"
# What a step's container gets from this process's environment: the S3 settings (the keys of the
# cluster's secret) and the thread and offline settings of the local run. Nothing else.
PASSED_ENV = (
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "TOKENIZERS_PARALLELISM",
    "SAEMERGE_EVAL_THREADS",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS",
)
# The images of this run, by flavour, for the steps' compute records and run.json (JSON).
IMAGES_ENV = "SAEMERGE_IMAGES"


def pipeline_images() -> dict[str, str]:
    """The images the compiled pipeline names (the compile defaults), by flavour."""
    from saemerge.pipeline.common import CompileOptions

    options = CompileOptions()
    return {"cpu": options.cpu_image, "gpu": options.gpu_image}


def engine():
    """A client of the container engine, or a one-line error naming what is missing."""
    try:
        import docker
    except ImportError as exc:
        raise SaeMergeError(
            "--runner docker: the 'docker' Python package is not installed (pip install docker)"
        ) from exc
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise SaeMergeError(f"--runner docker: no container engine reachable ({type(exc).__name__})") from exc
    return client


def image_references(client, images: dict[str, str]) -> dict[str, str]:
    """Each image as ``NAME@IMAGE_ID`` (its content), or a one-line error naming a missing one."""
    import docker

    refs = {}
    for flavour, name in images.items():
        try:
            found = client.images.get(name)
        except docker.errors.ImageNotFound:
            raise SaeMergeError(
                f"--runner docker: the {flavour} image {name} is not on this machine (build it: images/build.sh {flavour})"
            ) from None
        refs[flavour] = f"{name}@{found.id}"
    return refs


def container_environment(env: dict[str, str], images: dict[str, str]) -> dict[str, str]:
    """The environment of every step's container: the S3 keys, the run's settings, the cache."""
    from saemerge.pipeline.common import S3_SECRET_KEYS
    from saemerge.pipeline.resources import CACHE_MOUNT

    passed = {k: env[k] for k in (*S3_SECRET_KEYS, *PASSED_ENV) if k in env}
    return {**passed, "SAEMERGE_CACHE": CACHE_MOUNT, IMAGES_ENV: json.dumps(images, sort_keys=True)}


def writable_pipeline_root(root: Path) -> None:
    """Make kfp's pipeline root before the first container, writable by the container user.

    kfp bind-mounts it; a path that does not exist yet would be made by the engine, owned by
    root and not writable by uid 1000, and the first step would fail writing its outputs.
    """
    root.mkdir(parents=True, exist_ok=True)
    if os.getuid() != int(CONTAINER_USER):
        root.chmod(0o777)


def docker_runner(pipeline_root: Path):
    """kfp.local's DockerRunner for the pipeline's images; checks the engine and the images first."""
    from docker.types import Mount
    from kfp import local

    from saemerge.pipeline.resources import CACHE_MOUNT

    client = engine()
    try:
        images = image_references(client, pipeline_images())
    finally:
        client.close()
    writable_pipeline_root(Path(pipeline_root))
    volume = os.environ.get(CACHE_VOLUME_ENV) or DEFAULT_CACHE_VOLUME
    return local.DockerRunner(
        network_mode="host",
        user=CONTAINER_USER,
        read_only=True,
        environment=container_environment(dict(os.environ), images),
        mounts=[
            Mount(target=CACHE_MOUNT, source=volume, type="volume"),
            *(Mount(target=path, source=None, type="volume") for path in SCRATCH),
        ],
    )
