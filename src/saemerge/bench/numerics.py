"""Reproducible CPU numerics for the bench build: which kernels, how many threads, which process.

torch's CPU results depend on the kernels it picks for the processor: ATen's vectorised
kernels (AVX2 or AVX-512, by CPU capability) and MKL's GEMM code path. Either changes the bits
of a training step (measured: ``ATEN_CPU_CAPABILITY=default`` or ``MKL_CBWR=COMPATIBLE`` on
an AVX2 machine give other weights after 6 steps), and 2,500 steps later other experts: the
same seed gave a math expert of 0.725 on the machine the README was measured on and 0.665 on
a 2-core AMD EPYC (AVX2). Pinning both to the AVX2 path (``ATEN_CPU_CAPABILITY=avx2``,
``MKL_CBWR=AVX2``) asks every x86-64 processor with AVX2 (Intel or AMD, with or without
AVX-512) for the same kernels; on the AVX2 machine above the pinned build has the bytes of
the unpinned one (a build on an AVX-512 machine, to check the other side, was not at hand).
torch reads both once, when it first computes, so the build runs in a fresh process started
with them set (:func:`pinned_env`). Machines without AVX2,
and ARM machines (Apple silicon, Graviton), run other kernels: their builds are reproducible
on their own kind of machine only.

One or two threads give the same bytes (measured: the tiny and micro builds), more may not:
with grouped-query attention (micro, small) the backward of SDPA's CPU kernel sums the key and
value gradients in an order that depends on the thread count (3 or 4 threads gave other
micro weights; the tiny size, without it, gave the same weights with 4 threads over 20 steps).
So the build takes up to :data:`MAX_THREADS` of the cores that are free
(:func:`build_threads`): on a 2-core machine two threads made a training step 1.6x faster
when the other core was idle, and 1.2-3.5x slower when other processes kept it busy (OpenMP
threads wait for a descheduled sibling). Free cores are measured over half a second from the
kernel's CPU time counters (:func:`busy_cores`), not from the load average: the 1-minute load
average still counts a ``pip install`` that ended a minute ago (``make demo`` right after
``make venv``), and on the sandbox this was measured on it read 0.5-1.2 with nothing running,
which gave a quiet 2-core machine one thread.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from saemerge.cpus import busy_cores, usable_cores

#: What pinning sets on x86-64 with AVX2 (and nothing elsewhere).
X86_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}


#: The most threads a build takes by default: up to here the bytes do not depend on the count.
MAX_THREADS = 2


def build_threads() -> int:
    """Threads for a build: the usable cores not kept busy by other processes
    (:func:`busy_cores`), at least 1 and at most :data:`MAX_THREADS`."""
    return max(1, min(MAX_THREADS, usable_cores() - round(busy_cores())))


def _has_avx2() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return {"avx2", "fma"} <= set(flags.split())


def pinned_kernels() -> dict[str, str]:
    """The kernel choices pinned on this machine (empty where nothing is pinned)."""
    return dict(X86_AVX2) if _has_avx2() else {}


def pinned_env(threads: int) -> dict[str, str]:
    """Environment variables a build process with `threads` CPU threads starts with."""
    return {
        **pinned_kernels(),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }


def in_pinned_process(threads: int) -> bool:
    """Whether this process was started with :func:`pinned_env` (so torch picked those kernels)."""
    return all(os.environ.get(k) == v for k, v in pinned_env(threads).items())
