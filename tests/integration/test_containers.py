"""The images for real: built here (images/build-here.sh, .ci/run), and every step of the compiled
pipeline run inside its image (``saemerge run --local --runner docker``).

Needs a running container engine and the two images under the compile defaults' names; with no
engine the tests are skipped (one line saying so), and in CI (``CI`` set) missing images fail.
The run compares with the same micro run under the subprocess runner: the same final table and
the same models (content hashes), so the images hold the code and the environment of the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from saemerge import __version__, runlog, storage
from saemerge.pipeline import local_docker
from saemerge.runlog import RunLayout
from tests.support.microrun import MICRO_SAE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARAMS = MICRO_SAE


@pytest.fixture(scope="module")
def engine():
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no package, no socket, no daemon: all mean "no engine here"
        pytest.skip(f"no container engine reachable ({type(exc).__name__}): images/engine.sh start starts one")
    yield client
    client.close()


@pytest.fixture(scope="module")
def images(engine):
    """The pipeline's images by flavour (docker Image objects)."""
    import docker

    found, missing = {}, []
    for flavour, name in local_docker.pipeline_images().items():
        try:
            found[flavour] = engine.images.get(name)
        except docker.errors.ImageNotFound:
            missing.append(name)
    if missing:
        message = f"images not built: {', '.join(missing)} (images/build-here.sh builds them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _in_image(engine, image, *command: str) -> str:
    return engine.containers.run(image.id, list(command), network_mode="host", remove=True).decode()


@pytest.mark.parametrize("flavour", ["cpu", "gpu"])
def test_image_carries_its_identity_and_no_build_input(engine, images, flavour):
    image = images[flavour]
    labels = image.labels
    assert labels["org.opencontainers.image.title"] == f"saemerge-{flavour}"
    assert labels["org.opencontainers.image.version"] == __version__
    revision = labels["org.opencontainers.image.revision"]
    assert revision != "unknown" and len(revision.split("-")[0]) == 40
    assert _in_image(engine, image, "saemerge", "--version").strip() == (
        f"saemerge {__version__} (commit {revision}); {flavour} image"
    )
    # The build inputs (images/build-inputs/: ca.crt, wheelhouse/) were seen by the deps stage
    # only: no layer was made from them, and no file of them is anywhere in the image.
    history = " ".join(step["CreatedBy"] for step in engine.api.history(image.id))
    assert "build-inputs" not in history
    # (root: find reads every directory; the base's own pip/setuptools wheels in
    # /usr/share/python-wheels are Debian's python3-venv, not a build input)
    leftovers = engine.containers.run(
        image.id,
        [
            "find",
            "/",
            "-xdev",
            "(",
            "-name",
            "torch-*.whl",
            "-o",
            "-name",
            "ca.crt",
            "-o",
            "-name",
            "build-inputs",
            ")",
        ],
        network_mode="host",
        user="0",
        remove=True,
    ).decode()
    assert leftovers.strip() == ""
    # runs as the cluster does: uid 1000, group 0, HOME writable, the cache mount point its own
    assert _in_image(engine, image, "sh", "-c", 'id -u; id -g; echo "$HOME"; stat -c %u /saemerge-cache').split() == [
        "1000",
        "0",
        "/home/saemerge",
        "1000",
    ]


def test_gpu_image_imports_cuda_torch_and_the_evaluator(engine, images):
    out = _in_image(
        engine,
        images["gpu"],
        "python",
        "-c",
        "import json, torch, lm_eval, saemerge.steps.evaluation; "
        "print(json.dumps([torch.__version__, torch.version.cuda, torch.cuda.is_available()]))",
    )
    version, cuda, available = json.loads(out.strip().splitlines()[-1])
    assert version.startswith("2.13.0") and "+cpu" not in version
    assert cuda is not None  # a CUDA build ...
    assert available is False  # ... on a machine without a GPU


def _run(workdir, bucket, run_id, runner, volume):
    env = {**os.environ, local_docker.CACHE_VOLUME_ENV: volume}
    args = [sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(workdir), "--bench-size", "micro"]
    args += ["--steps", "2", "--bucket", bucket, "--run-id", run_id, "--runner", runner, *PARAMS]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def _models(run_uri: str) -> dict:
    """What must be equal: the final table without the run's URIs, and every generation's models."""
    layout = RunLayout(run_uri)
    results = [{k: v for k, v in row.items() if k != "uri"} for row in layout.read_results()]
    populations = {g: sorted(r["id"] for r in layout.read_population(g)) for g in layout.generations()}
    return {"results": results, "populations": populations}


def test_sae_micro_run_in_containers_equals_the_subprocess_run(engine, images, s3_env, micro_bench, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(micro_bench, workdir / "bench" / "micro-seed0")
    bucket = "saemerge-test"
    volume = f"saemerge-cache-test-{os.getpid()}"
    tag = f"{os.getpid()}"
    try:
        in_containers = _run(workdir, bucket, f"docker-{tag}", "docker", volume)
        _run(workdir, bucket, f"subprocess-{tag}", "subprocess", volume)
    finally:
        try:
            engine.volumes.get(volume).remove(force=True)
        except Exception:  # never made (the run failed before its first step)
            pass
    docker_uri, subprocess_uri = (f"s3://{bucket}/runs/{kind}-{tag}" for kind in ("docker", "subprocess"))
    assert _models(docker_uri) == _models(subprocess_uri)
    assert "sae " in in_containers.stdout

    # Each step ran in its image and recorded it; run.json records the pipeline's images.
    layout = RunLayout(docker_uri)
    refs = {flavour: f"{image.tags[0]}@{image.id}" for flavour, image in images.items()}
    assert runlog.read_json(layout.run_json)["images"] == refs
    records = [runlog.read_json(u) for u in storage.list_uris(layout.compute_dir) if u.endswith(".json")]
    flavours = {r["kind"]: r["image"]["flavour"] for r in records}
    assert flavours["evaluate"] == flavours["final_evaluate"] == "gpu"
    assert flavours["merge"] == flavours["prune"] == "cpu"
    assert {r["image"]["ref"] for r in records} <= set(refs.values())
    assert all(r["image"]["commit"] == images["cpu"].labels["org.opencontainers.image.revision"] for r in records)
    # the subprocess run ran in no image
    sub_records = RunLayout(subprocess_uri).compute_dir
    assert all(runlog.read_json(u)["image"] is None for u in storage.list_uris(sub_records) if u.endswith(".json"))

    # The S3 secret reached the steps as environment only: not in the run's log or the images.
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret not in (workdir / "runs" / f"docker-{tag}" / "kfp.log").read_text()
    for image in images.values():
        assert secret not in json.dumps(engine.api.inspect_image(image.id))
