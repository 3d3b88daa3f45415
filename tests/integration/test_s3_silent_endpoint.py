"""An S3 endpoint that accepts connections and never answers: the first line comes within 30 s,
naming what is waited on and the time left, not after attempts × the read timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.integration

_PROBE = (
    "import logging; logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s'); "
    "from saemerge import storage; storage.exists('s3://silent-bucket/runs/r/run.json')"
)


@pytest.fixture
def silent_endpoint():
    """A TCP server on loopback that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_silent_endpoint_is_reported_within_30_s_with_the_time_left(silent_endpoint):
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": silent_endpoint,
        "AWS_ACCESS_KEY_ID": "SAESILENT00000000000",
        "AWS_SECRET_ACCESS_KEY": "not-a-secret-for-this-test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    start = time.monotonic()
    probe = subprocess.Popen(
        [sys.executable, "-c", _PROBE], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
    )
    deadline = threading.Timer(45, probe.kill)  # a probe that says nothing is stopped, not waited for
    deadline.start()
    try:
        line = ""
        for line in probe.stderr:
            if "waiting for" in line:
                break
        elapsed = time.monotonic() - start
    finally:
        deadline.cancel()
        probe.kill()
        probe.wait()
    assert "waiting for" in line, line
    assert elapsed < 30, elapsed
    assert f"S3: waiting for {silent_endpoint} to answer HeadObject /silent-bucket/runs/r/run.json" in line
    assert "attempt 1 of 5; giving up in at most 590 s" in line  # 110 s of this attempt + 4 × 120 s
