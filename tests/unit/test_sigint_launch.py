"""The suite does not depend on how it is launched: started with SIGINT ignored (a background job
of a script), the processes its tests start still stop on SIGINT, as runs stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def test_a_started_process_stops_on_sigint():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "up"
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode != 0 and "KeyboardInterrupt" in err


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_the_suite_started_with_sigint_ignored_still_interrupts_what_it_starts():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_a_started_process_stops_on_sigint",
        ],
        cwd=_REPO,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_ignore_sigint,  # as `(trap '' INT; pytest ...)` or `pytest &` in a script
        env={**os.environ, "PYTEST_ADDOPTS": ""},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
