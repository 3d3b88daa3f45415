"""A run lease: one process at a time drives a run (``RUN/lease.json``).

Two drivers on one run id would both write the run's per-generation records and overwrite
each other's. A driver takes the lease before it starts the pipeline, renews it (a heartbeat)
while the run goes on, and releases it at the end. Another driver finds a lease whose
heartbeat is recent and refuses; a lease whose heartbeat is older than ``stale_after`` seconds
belongs to a driver that died (SIGKILL, a lost machine) and is taken over. A lease held on this
host by a process that no longer exists (its pid gone, or reused by a process that started
later) is taken over at once: a resume right after a crash need not wait out the heartbeat.

Plain S3 has no compare-and-swap, so taking a lease is write-then-read-back: two drivers that
start within the same instant can both believe they won, and the second one's first heartbeat
finds the other's token and stops. This guards against the common mistakes (a second
``--resume`` while a run goes on, two terminals on one run id), not against an adversary.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field

from saemerge import storage
from saemerge.errors import SaeMergeError

STALE_AFTER_S = 60.0
HEARTBEAT_S = 10.0


def process_start(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot, field 22 of /proc/PID/stat); None when no such
    process runs, "" where /proc cannot tell (then only whether the pid exists is known)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "" if not os.path.isdir("/proc/self") else None
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # the fields after the command name start at field 3


def driver_gone(record: dict) -> bool:
    """True when the lease's driver ran on this host and that process no longer exists."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False  # another host's process: only its heartbeat can tell
    started = process_start(pid)
    if started is None:
        return True
    return bool(started and record.get("pid_start") and record["pid_start"] != started)  # pid reused


@dataclass
class RunLease:
    """The lease at `uri` (a run's ``lease.json``), held by this process once :meth:`acquire` returns."""

    uri: str
    run: str = ""
    stale_after: float = STALE_AFTER_S
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    _renewed: float = 0.0

    def _record(self, state: str = "held") -> dict:
        return {
            "token": self.token,
            "pid": os.getpid(),
            "pid_start": process_start(os.getpid()),
            "host": socket.gethostname(),
            "state": state,
            "heartbeat": time.time(),
        }

    def _current(self) -> dict | None:
        if not storage.exists(self.uri):
            return None
        try:
            return json.loads(storage.read_bytes(self.uri))
        except (ValueError, SaeMergeError):
            return None  # unreadable: nobody can be said to hold it

    def _refuse_if_held(self, current: dict | None) -> None:
        if not current or current.get("token") == self.token or current.get("state") != "held":
            return
        age = time.time() - float(current.get("heartbeat", 0))
        if age < self.stale_after and not driver_gone(current):
            raise SaeMergeError(
                f"run {self.run or self.uri} is in use by pid {current.get('pid')} on {current.get('host')} "
                f"(heartbeat {age:.0f} s ago); wait for it to end or stop it first"
            )

    def acquire(self) -> RunLease:
        """Take the lease, or fail with one line naming who holds it."""
        self._refuse_if_held(self._current())
        storage.write_bytes(self.uri, json.dumps(self._record()).encode())
        self._renewed = time.monotonic()
        self._refuse_if_held(self._current())  # another driver wrote in the same instant
        return self

    def heartbeat(self) -> None:
        """Renew the lease (at most every HEARTBEAT_S seconds); fail if another driver took it."""
        if time.monotonic() - self._renewed < HEARTBEAT_S:
            return
        current = self._current()
        if current and current.get("token") != self.token:
            raise SaeMergeError(
                f"run {self.run or self.uri}: another driver (pid {current.get('pid')} on "
                f"{current.get('host')}) took the lease; stopping"
            )
        storage.write_bytes(self.uri, json.dumps(self._record()).encode())
        self._renewed = time.monotonic()

    def release(self) -> None:
        """Give the lease up (only if it is still ours)."""
        current = self._current()
        if current and current.get("token") == self.token:
            storage.write_bytes(self.uri, json.dumps(self._record("released")).encode())
