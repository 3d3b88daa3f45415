"""benchmarks/run_bench.py reads task times from kfp.local's log, also when an end has no time."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "run_bench.py"


@pytest.fixture(scope="module")
def run_bench():
    spec = importlib.util.spec_from_file_location("run_bench", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_bench"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("run_bench", None)


LOG = """\
10:00:00.000 - INFO - Executing task \x1b[96m'pair-and-merge'\x1b[0m
10:00:00.010 - INFO - Executing task 'pair-and-merge'
    [KFP Executor 2026-11-30 10:00:01,000 INFO]: merging
10:00:04.000 - INFO - Task 'pair-and-merge' finished with status \x1b[92mSUCCESS\x1b[0m
                                                    10:00:04.010 - INFO - Executing task 'pair-and-merge'
INFO:root:Task 'pair-and-merge' finished with status SUCCESS
10:00:04.500 - INFO - Task 'pair-and-merge' finished with status SUCCESS
10:00:04.600 - INFO - Executing task 'evaluate'
23:59:59.000 - INFO - Task 'evaluate' finished with status SUCCESS
"""


def test_an_end_logged_without_a_time_takes_the_next_lines_and_no_task_is_paired_wrong(run_bench):
    # also: a start line behind the blanks a progress bar's carriage return left
    tasks = run_bench.parse_kfp_log(LOG)
    by = [(t.name, round(t.start % 86400, 3), round(t.seconds, 3)) for t in tasks]
    assert by == [
        ("pair-and-merge", 36000.0, 4.0),
        ("pair-and-merge", 36000.01, 4.49),  # ended by the untimed line, at the next timed one
        ("pair-and-merge", 36004.01, 0.49),
        ("evaluate", 36004.6, 50394.4),
    ]
    assert all(t.status == "SUCCESS" for t in tasks)
    assert any("merging" in line for line in tasks[0].lines)


def test_the_bench_times_the_warm_runners_own_lists(run_bench):
    """One list of what steps import (pipeline.local_warm.STEP_IMPORTS): the bench times it, the
    fork server imports all of it, and it names every step module a component imports."""
    import re

    from saemerge.pipeline import local_warm

    assert run_bench.STEP_IMPORTS is local_warm.STEP_IMPORTS
    assert set(run_bench.FLOOR_STEPS) <= set(local_warm.STEP_IMPORTS)
    listed = [m for modules in local_warm.STEP_IMPORTS.values() for m in modules]
    assert sorted(local_warm.WARM_IMPORTS) == sorted(set(listed))
    components = Path(__file__).resolve().parents[2] / "components"
    imported = {
        m
        for path in components.glob("*.py")
        for m in re.findall(r"from (saemerge\.steps\.\w+|saemerge\.report) import", path.read_text())
    }
    imported |= {"saemerge.steps." + m for path in components.glob("*.py")
                 for m in re.findall(r"from saemerge\.steps import (\w+)", path.read_text())}  # fmt: skip
    assert imported and imported <= set(local_warm.WARM_IMPORTS)


SERVER = """
import os, sys, time
pid = os.fork()
if pid == 0:  # a forked step: 64 MiB of its own
    block = bytearray(64 << 20)
    block[:: 4096] = b"x" * len(block[:: 4096])
    time.sleep(2.5)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_the_fork_servers_memory_is_sampled_from_proc(run_bench):
    """A stand-in server (a process whose command line names the warm runner's module) under a
    run's process, with one forked step: both found, the step's private pages counted."""
    import os
    import subprocess

    launch = (
        "import os, subprocess, sys; subprocess.run([sys.executable, '-c', os.environ['SERVER'], os.environ['NAME']])"
    )
    env = {**os.environ, "SERVER": SERVER, "NAME": "saemerge.pipeline.local_warm"}
    root = subprocess.Popen([sys.executable, "-c", launch], env=env)
    with run_bench.ForkServerMemory(root.pid, interval=0.1) as memory:
        assert root.wait(timeout=60) == 0
    assert memory.server["peak_rss"] > 0 and len(memory.steps) == 1
    (step,) = memory.steps.values()
    assert step["uss"] >= 64 << 20 and step["peak_rss"] >= step["uss"]
    text = memory.summary(1.0, 2.0)
    assert "load 1.0 -> 2.0" in text and "step, largest" in text
