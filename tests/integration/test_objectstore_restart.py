"""A restarted store keeps its endpoint, a killed one leaves no sockets to the next start, and the
message for a store in use never tells a user to stop another run's store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from saemerge.errors import SaeMergeError
from saemerge.objectstore import Store

pytestmark = pytest.mark.integration


def _socks(ports: dict) -> list[Path]:
    return [p for port in ports.values() for p in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]


def test_a_restarted_store_keeps_its_endpoint_and_a_killed_ones_sockets_go(tmp_path):
    root = tmp_path / "store"
    first = Store(root, buckets=["keep"]).start(detach=True)
    endpoint, ports = first.endpoint, dict(first.ports)
    assert _socks(ports)
    os.kill(first.pid, signal.SIGKILL)  # as a crash, or `kill -9`: nothing cleans up
    first._proc.wait()
    assert _socks(ports)  # left behind by weed
    again = Store(root).start()
    try:
        assert again.endpoint == endpoint  # `eval "$(saemerge store env)"` of before still works
        assert again.bucket_names() == ["keep"]
    finally:
        again.stop()
    assert not _socks(ports)


def test_a_store_another_run_started_is_not_to_be_stopped(tmp_path):
    root = tmp_path / "store"
    code = (
        "import sys, time; from saemerge.objectstore import Store; "
        f"s = Store({str(root)!r}).start(); print('up', flush=True); time.sleep(120)"
    )
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "up"
        with pytest.raises(SaeMergeError) as err:
            Store(root).start()
        message = str(err.value)
        assert f"started by another run (pid {other.pid})" in message
        assert "store stop" not in message
    finally:
        other.terminate()
        other.wait(timeout=60)
