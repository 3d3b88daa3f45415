"""One lock for the images and the development venv: the environment the tests run in is exactly
images/constraints.txt (+ constraints-dev.txt for the dev tools), and `make venv` installs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_this_environment_is_the_lock():
    """Fails when the venv drifted from the lock (a floating install, a hand-upgraded package) or
    the lock from pyproject.toml: run `make venv`, or `make lock` and commit the files."""
    done = subprocess.run(
        [sys.executable, str(REPO / "images" / "lock.py"), "--check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_make_venv_installs_the_lock():
    recipe = subprocess.run(
        ["make", "-n", "-B", "-C", str(REPO), "venv"], capture_output=True, text=True, timeout=60
    ).stdout
    assert '-c images/constraints.txt -c images/constraints-dev.txt -e ".[dev]"' in recipe
    assert "images/lock.py --check" in recipe
    torch_pin = next(
        line.split("==")[1]
        for line in (REPO / "images" / "constraints.txt").read_text().splitlines()
        if line.startswith("torch==")
    )
    assert f'"torch=={torch_pin}"' in recipe.replace("$(sed -n 's/^torch==//p' images/constraints.txt)", torch_pin)
