"""The embedded SeaweedFS: loopback only, no telemetry, credentials, clean start/stop, CLI."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from saemerge.errors import SaeMergeError
from saemerge.s3server.server import Store, find_weed, store_env

pytestmark = pytest.mark.integration


def _sockets(pid: int) -> list:
    return psutil.Process(pid).net_connections(kind="inet")


def test_listens_on_loopback_only_and_sends_no_telemetry(s3_store):
    conns = _sockets(s3_store.pid)
    listening = [c for c in conns if c.status == psutil.CONN_LISTEN]
    # every port we assigned is listening, on 127.0.0.1 and nowhere else
    assert {c.laddr.port for c in listening} == set(s3_store.ports.values())
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}
    # no connection of the process leaves the machine (telemetry would)
    for c in conns:
        if c.raddr:
            assert ipaddress.ip_address(c.raddr.ip).is_loopback, c
    cmdline = psutil.Process(s3_store.pid).cmdline()
    for flag in (
        "-master.telemetry=false",
        "-admin.ui=false",
        "-ip.bind=127.0.0.1",
        "-webdav=false",
        "-s3.autoCreateBucket=false",
    ):
        assert flag in cmdline


def test_credentials_are_private_and_not_logged(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "store"
    with Store(root, buckets=["bkt"]) as store:
        for name in ("credentials.json", "s3.json", "state.json"):
            assert stat.S_IMODE((root / name).stat().st_mode) == 0o600, name
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert store.bucket_names() == ["bkt"]
        secrets = (store.admin.secret_key, store.readonly.secret_key)
        assert store.admin.secret_key not in repr(store.admin)
    log_text = caplog.text + (root / "weed.log").read_text()
    for secret in secrets:
        assert secret not in log_text


def test_stop_ends_process_and_removes_sockets_and_restart_keeps_data(tmp_path):
    import boto3

    store = Store(tmp_path / "store", buckets=["keep"]).start()
    pid, ports = store.pid, dict(store.ports)
    env = store.env()
    boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    ).put_object(Bucket="keep", Key="a/b.txt", Body=b"kept")
    assert list(Path("/tmp").glob(f"seaweedfs-*-{ports['s3']}.sock"))
    store.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    for port in ports.values():
        assert not list(Path("/tmp").glob(f"seaweedfs-*-{port}.sock"))
    assert not (tmp_path / "store" / "state.json").exists()

    again = Store(tmp_path / "store").start()  # same directory: same keys, same objects
    try:
        assert again.admin == store.admin
        env = again.env()
        client = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        assert client.get_object(Bucket="keep", Key="a/b.txt")["Body"].read() == b"kept"
    finally:
        again.stop()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "saemerge", "store", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_start_env_status_stop(tmp_path):
    d = str(tmp_path / "cli-store")
    started = _cli("start", "--dir", d, "--bucket", "runs")
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads((tmp_path / "cli-store" / "state.json").read_text())
        pid = state["pid"]
        assert psutil.pid_exists(pid)

        status = _cli("status", "--dir", d)
        assert status.returncode == 0 and state["endpoint"] in status.stdout and "runs" in status.stdout
        secret = store_env(d)["AWS_SECRET_ACCESS_KEY"]
        assert secret not in status.stdout + status.stderr + started.stdout + started.stderr

        env_out = _cli("env", "--dir", d).stdout
        exported = dict(line.removeprefix("export ").split("=", 1) for line in env_out.splitlines())
        assert exported["AWS_ENDPOINT_URL"] == state["endpoint"]
        assert set(exported) == {
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "SAEMERGE_STORE_DATA",
        }
        # the exported variables work for saemerge.storage in a fresh process
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "from saemerge import storage; storage.write_bytes('s3://runs/x', b'1');"
                "print(storage.read_bytes('s3://runs/x'))",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **exported},
            timeout=120,
        )
        assert probe.stdout.strip() == "b'1'", probe.stderr
        ro = dict(
            line.removeprefix("export ").split("=", 1)
            for line in _cli("env", "--dir", d, "--readonly").stdout.splitlines()
        )
        assert ro["AWS_ACCESS_KEY_ID"] != exported["AWS_ACCESS_KEY_ID"]
        # a detached store is found and reused (the local runner's way), its buckets ensured
        attached = Store.attach_detached(d)
        assert attached is not None and attached.pid == pid
        attached.ensure_buckets(["runs", "more"])
        assert attached.bucket_names() == ["more", "runs"]
    finally:
        stopped = _cli("stop", "--dir", d)
    assert stopped.returncode == 0, stopped.stderr
    assert Store.attach_detached(d) is None  # stopped: nothing to attach to
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert _cli("status", "--dir", d).returncode == 1


def test_find_weed_falls_back_to_the_interpreter_dir(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert Path(find_weed()).parent == Path(sys.executable).parent


def test_second_server_on_one_directory_is_refused_and_attach_reuses(tmp_path):
    with Store(tmp_path / "s") as first:
        with pytest.raises(SaeMergeError, match="already runs under"):
            Store(tmp_path / "s").start()
        assert Store.attach_detached(tmp_path / "s") is None  # owned by this process, not detached
        assert Store.attach_detached(tmp_path / "none") is None  # nothing recorded there
        with Store.attach_or_start(tmp_path / "s", buckets=["extra"]) as again:
            assert (again.pid, again.endpoint, again.admin) == (first.pid, first.endpoint, first.admin)
        assert first.running()  # leaving the attached store's context does not stop it
        assert first.bucket_names() == ["extra"]
    assert not first.running()


def test_a_second_store_on_one_directory_is_refused_by_the_lock_naming_the_pid(tmp_path):
    import signal

    root = tmp_path / "locked"
    first = Store(root).start()
    try:
        # start() has closed its own copy of the lock: the server process holds it
        assert (root / "data" / "store.lock").read_text().strip() == str(first.pid)
        (root / "state.json").unlink()  # even with no state to find the server by
        with pytest.raises(SaeMergeError) as err:
            Store(root).start()
        assert str(err.value).startswith(f"an object store already runs under {root} (pid {first.pid})")
        os.kill(first.pid, signal.SIGKILL)  # a crashed server leaves no stale lock behind
        first._proc.wait()
        second = Store(root).start()
        second.stop()
    finally:
        first.stop()


def test_the_log_and_data_are_private(tmp_path):
    root = tmp_path / "private"
    root.mkdir()
    (root / "weed.log").write_text("an older, world-readable log\n")
    (root / "weed.log").chmod(0o644)
    with Store(root):
        assert stat.S_IMODE((root / "weed.log").stat().st_mode) == 0o600
        assert stat.S_IMODE((root / "data").stat().st_mode) == 0o700
        assert stat.S_IMODE((root / "data" / "store.lock").stat().st_mode) == 0o600
