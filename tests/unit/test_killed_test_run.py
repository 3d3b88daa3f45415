"""A killed test run leaves nothing running: SIGTERM to pytest stops what its test started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_sigterm_to_pytest_stops_the_child_its_test_started(tmp_path):
    pidfile = tmp_path / "child.pid"
    sleeper = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    (tmp_path / "test_sleeper.py").write_text(
        f"import subprocess, sys\n\n\ndef test_sleeps():\n    subprocess.run([sys.executable, '-c', {sleeper!r}])\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    child = None
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
        assert pidfile.exists(), run.communicate()[0]
        child = int(pidfile.read_text())
        run.send_signal(signal.SIGTERM)
        out, _ = run.communicate(timeout=60)
        assert run.returncode != 0, out
        time.sleep(0.5)
        assert not _alive(child), "the test's child outlived the killed test run:\n" + out
    finally:
        if run.poll() is None:
            run.kill()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)
