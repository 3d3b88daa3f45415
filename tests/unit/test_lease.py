"""The run lease: one driver at a time, a dead driver's lease taken over once stale."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from saemerge.errors import SaeMergeError
from saemerge.lease import RunLease


def test_a_second_driver_is_refused_until_release(tmp_path):
    uri = str(tmp_path / "run" / "lease.json")
    first = RunLease(uri, run="r1").acquire()
    with pytest.raises(SaeMergeError, match=r"run r1 is in use by pid \d+ on .*heartbeat 0 s ago"):
        RunLease(uri, run="r1").acquire()
    first.release()
    assert json.loads((tmp_path / "run" / "lease.json").read_text())["state"] == "released"
    RunLease(uri, run="r1").acquire()


def test_a_stale_lease_is_taken_over(tmp_path):
    uri = tmp_path / "lease.json"
    uri.write_text(json.dumps({"token": "dead", "pid": 1, "host": "h", "state": "held", "heartbeat": 0}))
    lease = RunLease(str(uri)).acquire()
    assert json.loads(uri.read_text())["token"] == lease.token


def test_heartbeat_notices_a_takeover(tmp_path, monkeypatch):
    uri = tmp_path / "lease.json"
    lease = RunLease(str(uri)).acquire()
    uri.write_text(json.dumps({"token": "other", "pid": 7, "host": "h", "state": "held", "heartbeat": 1e12}))
    monkeypatch.setattr("saemerge.lease.HEARTBEAT_S", 0.0)
    with pytest.raises(SaeMergeError, match="another driver .pid 7"):
        lease.heartbeat()
    lease.release()  # not ours any more: left alone
    assert json.loads(uri.read_text())["token"] == "other"


def _hold_in_child(uri: str) -> subprocess.Popen:
    """A driver in another process on this host that takes the lease and keeps running."""
    code = f"from saemerge.lease import RunLease; RunLease({uri!r}, run='r').acquire(); print('held', flush=True); import time; time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_crashed_drivers_lease_on_this_host_is_taken_over_at_once(tmp_path):
    uri = str(tmp_path / "lease.json")
    child = _hold_in_child(uri)
    try:
        with pytest.raises(SaeMergeError, match=f"in use by pid {child.pid}"):
            RunLease(uri, run="r").acquire()  # alive: refused
    finally:
        child.kill()
        child.wait()
    lease = RunLease(uri, run="r").acquire()  # dead, heartbeat 0 s old: taken over, no 60 s wait
    assert json.loads((tmp_path / "lease.json").read_text())["token"] == lease.token


def test_a_reused_pid_does_not_keep_a_lease(tmp_path):
    uri = tmp_path / "lease.json"
    record = {"token": "old", "pid": os.getpid(), "pid_start": "1", "host": socket.gethostname()}
    uri.write_text(json.dumps({**record, "state": "held", "heartbeat": time.time()}))
    RunLease(str(uri)).acquire()  # the pid runs, but it is a process started later than the driver


def test_another_hosts_lease_waits_for_its_heartbeat(tmp_path):
    uri = tmp_path / "lease.json"
    uri.write_text(
        json.dumps({"token": "x", "pid": 999999999, "host": "elsewhere", "state": "held", "heartbeat": time.time()})
    )
    with pytest.raises(SaeMergeError, match="in use by pid 999999999 on elsewhere"):
        RunLease(str(uri)).acquire()
