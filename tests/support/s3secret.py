"""What the compile tests check of a step's S3 secret: mounted as one volume, never as env."""

from __future__ import annotations

from saemerge.storage.s3_conn import S3_SECRET_MOUNT


def assert_s3_secret_mounted(config: dict, secret: str = "saemerge-s3") -> None:
    """`config` (a task's Kubernetes executor config) mounts `secret` where the steps look for it
    (saemerge.storage.s3_conn.S3_SECRET_MOUNT), required, and maps no secret into the
    environment (one env entry per key cost ~10 KB of the stored Workflow per key)."""
    assert "secretAsEnv" not in config, config.get("secretAsEnv")
    (mount,) = config["secretAsVolume"]
    name = mount.get("secretName") or mount["secretNameParameter"]["runtimeValue"]["constant"]
    assert name == secret
    assert mount["mountPath"] == S3_SECRET_MOUNT and mount.get("optional") is False


def secret_names(platform: dict) -> set[str]:
    """The secrets a compiled pipeline's tasks mount (its platform spec's executors)."""
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
    return {
        m.get("secretName") or m["secretNameParameter"]["runtimeValue"]["constant"]
        for e in executors
        for m in e.get("secretAsVolume", [])
    }
