"""The run lease: one driver at a time, a dead driver's lease taken over once stale."""

import json

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
