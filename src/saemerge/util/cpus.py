"""The CPU cores a process may use, and how many of them other processes keep busy now.

Torch-free, so the local runner and the study driver can decide thread counts without
importing torch. :func:`usable_cores` is what a step may use (its affinity, capped by a
container's CPU quota); :func:`busy_cores` and :func:`idle_cores` measure the machine as it is.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

#: ``SAEMERGE_EVAL_THREADS``: evaluation's torch threads, a count or :data:`IDLE`
#: (read by :func:`saemerge.evaluate.hf.set_cpu_threads`).
EVAL_THREADS_ENV = "SAEMERGE_EVAL_THREADS"
#: Take the cores that are idle when the evaluator starts (the local runner's setting).
IDLE = "idle"


def usable_cores() -> int:
    """CPU cores this process may use: its affinity, capped by a cgroup CPU quota (a pod's limit)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def _cgroup_quota() -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), None when unlimited."""
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def _cpu_times() -> tuple[int, int]:
    """(all, idle) CPU time of the machine so far, in clock ticks, from ``/proc/stat``'s first line."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return user + nice + system + idle + iowait + irq + softirq + steal, idle + iowait


def _own_ticks() -> float:
    """CPU time this process has used so far (all its threads), in the clock ticks of ``/proc/stat``."""
    t = os.times()
    return (t.user + t.system) * os.sysconf("SC_CLK_TCK")


class CoreProbe:
    """How many cores other processes keep busy, measured from the probe's creation to :meth:`busy`.

    This process's own CPU time is left out, so the probe can run while the process works:
    an evaluate step starts one, then imports lm-eval and builds its tasks, and reads it when
    it sets its threads, without waiting for a window of its own.

    Args:
        min_interval: :meth:`busy` waits until at least this many seconds have passed.
    """

    def __init__(self, min_interval: float = 0.5):
        self.min_interval = min_interval
        self._started = time.monotonic()
        try:
            self._machine: tuple[int, int] | None = _cpu_times()
        except (OSError, ValueError):
            self._machine = None
        self._own = _own_ticks()

    def busy(self) -> float:
        """Cores kept busy by other processes since the probe started (the machine's non-idle
        share of CPU time minus this process's, times its cores); the 1-minute load average
        where ``/proc/stat`` is missing (macOS)."""
        wait = self.min_interval - (time.monotonic() - self._started)
        if wait > 0:
            time.sleep(wait)
        if self._machine is not None:
            try:
                total1, idle1 = _cpu_times()
            except (OSError, ValueError):
                return _load_average()
            total0, idle0 = self._machine
            if total1 <= total0:
                return 0.0
            others = (total1 - total0) - (idle1 - idle0) - (_own_ticks() - self._own)
            return max(0.0, others / (total1 - total0) * (os.cpu_count() or 1))
        return _load_average()


def _load_average() -> float:
    """The 1-minute load average, 0 where the system has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def busy_cores(interval: float = 0.5) -> float:
    """How many of the machine's cores other processes keep busy, measured over `interval`
    seconds (:class:`CoreProbe`)."""
    return CoreProbe(interval).busy()


def idle_cores(probe: CoreProbe | None = None) -> int:
    """The usable cores (:func:`usable_cores`) that other processes do not keep busy, at least 1:
    over `probe`'s window, or else over the next 0.2 s (40 clock ticks on 2 cores)."""
    busy = (probe or CoreProbe(0.2)).busy()
    return max(1, usable_cores() - round(busy))
