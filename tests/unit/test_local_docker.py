"""The docker runner's setup of a step's container, without an engine: environment, pipeline root, identity."""

import json
import os

import pytest

from saemerge import commit, image, pipeline_images, version_line
from saemerge.errors import SaeMergeError
from saemerge.pipeline import local_child, local_docker
from saemerge.pipeline.resources import CACHE_MOUNT

SECRET = "s3cr3t-value-never-elsewhere"


def test_container_environment_passes_the_s3_keys_and_run_settings_only():
    host = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "OMP_NUM_THREADS": "1",
        "SAEMERGE_EVAL_THREADS": "idle",
        "HF_HUB_OFFLINE": "1",
        "HOME": "/root",
        "PATH": "/host/bin",
        "VIRTUAL_ENV": "/host/.venv",
        "SAEMERGE_CACHE": "/host/cache",
        "AWS_PROFILE": "someone",
    }
    images = {"cpu": "saemerge-cpu:1@sha256:aa", "gpu": "saemerge-gpu:1@sha256:bb"}
    env = local_docker.container_environment(host, images)
    assert env["AWS_SECRET_ACCESS_KEY"] == SECRET and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert env["OMP_NUM_THREADS"] == "1" and env["SAEMERGE_EVAL_THREADS"] == "idle" and env["HF_HUB_OFFLINE"] == "1"
    # the host's paths and identity stay out: the image's PATH, HOME and venv are the cluster's
    for key in ("HOME", "PATH", "VIRTUAL_ENV", "AWS_PROFILE"):
        assert key not in env
    assert env["SAEMERGE_CACHE"] == CACHE_MOUNT  # the cache volume, not the host's cache path
    assert json.loads(env[local_docker.IMAGES_ENV]) == images


def test_pipeline_root_is_made_writable_before_the_first_container(tmp_path):
    root = tmp_path / "run" / "kfp-root"
    local_docker.writable_pipeline_root(root)
    assert root.is_dir()
    if os.getuid() != int(local_docker.CONTAINER_USER):  # another uid than the containers' must let it write
        assert root.stat().st_mode & 0o777 == 0o777


def test_the_runner_is_registered_and_takes_the_pipeline_root():
    assert local_child.check_runner("docker") == "docker"
    assert local_child.RUNNERS["docker"].__name__ == "docker_runner"


def test_no_engine_is_one_line_naming_the_runner(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SaeMergeError, match=r"^--runner docker: no container engine reachable"):
        local_docker.engine()


class _Images:
    def __init__(self, present):
        self.present = present

    def get(self, name):
        import docker

        if name not in self.present:
            raise docker.errors.ImageNotFound(name)
        return type("Image", (), {"id": self.present[name]})()


def test_a_missing_image_is_named_with_the_command_that_builds_it():
    client = type("Client", (), {"images": _Images({"c:1": "sha256:11"})})()
    assert local_docker.image_references(client, {"cpu": "c:1"}) == {"cpu": "c:1@sha256:11"}
    with pytest.raises(
        SaeMergeError, match=r"the gpu image g:1 is not on this machine \(build it: images/build.sh gpu\)"
    ):
        local_docker.image_references(client, {"cpu": "c:1", "gpu": "g:1"})


def test_identity_outside_and_inside_an_image(monkeypatch):
    monkeypatch.delenv("SAEMERGE_IMAGE_FLAVOUR", raising=False)
    monkeypatch.delenv("SAEMERGE_COMMIT", raising=False)
    monkeypatch.delenv("SAEMERGE_IMAGES", raising=False)
    assert image() is None and pipeline_images() == {}
    assert "(commit " in version_line() and "image" not in version_line()
    monkeypatch.setenv("SAEMERGE_IMAGE_FLAVOUR", "gpu")
    monkeypatch.setenv("SAEMERGE_COMMIT", "abc123")
    monkeypatch.setenv("SAEMERGE_IMAGES", json.dumps({"gpu": "g:1@sha256:22"}))
    assert commit() == "abc123"
    assert image() == {"flavour": "gpu", "version": image()["version"], "commit": "abc123", "ref": "g:1@sha256:22"}
    assert version_line().endswith("(commit abc123); gpu image")
    monkeypatch.setenv("SAEMERGE_IMAGES", "not json")
    assert image()["ref"] is None


def test_a_step_records_the_image_it_ran_in(tmp_path, monkeypatch):
    from saemerge import compute, runlog, storage
    from saemerge.runlog import RunLayout

    run = str(tmp_path / "run")
    monkeypatch.delenv("SAEMERGE_IMAGE_FLAVOUR", raising=False)
    with compute.measured(run, "merge", "on the host"):
        pass
    monkeypatch.setenv("SAEMERGE_IMAGE_FLAVOUR", "cpu")
    monkeypatch.setenv("SAEMERGE_COMMIT", "abc123")
    monkeypatch.setenv("SAEMERGE_IMAGES", json.dumps({"cpu": "c:1@sha256:11"}))
    with compute.measured(run, "merge", "in the image"):
        pass
    records = {r["label"]: r for r in map(runlog.read_json, storage.list_uris(RunLayout(run).compute_dir))}
    assert records["on the host"]["image"] is None
    assert records["in the image"]["image"] == {
        "flavour": "cpu",
        "version": records["in the image"]["image"]["version"],
        "commit": "abc123",
        "ref": "c:1@sha256:11",
    }
