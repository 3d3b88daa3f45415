"""A full disk is the machine's problem, not a bug: one line naming the path, exit 2, nothing half-written."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def tiny_disk(tmp_path):
    """A 100 KB tmpfs (needs root and mount permission: skipped elsewhere)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_prune_onto_a_full_disk_says_so_in_one_line(tiny_family, tiny_disk, tmp_path):
    out = tiny_disk / "pruned"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "saemerge",
            "prune",
            str(tiny_family["expert0"]),
            "--base",
            str(tiny_family["base"]),
            "--sparsity",
            "0.5",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "SAEMERGE_CACHE": str(tmp_path)},
    )
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("saemerge:") or "Traceback" in line]
    assert lines == [f"saemerge: error: {out}: No space left on device"], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_bench_build_onto_a_full_disk_says_so_once_and_leaves_nothing(tiny_disk):
    out = tiny_disk / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "saemerge", "bench", "build", "--size", "micro", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("saemerge:")]
    assert len(errors) == 1 and errors[0].startswith(f"saemerge: error: --out {out}: no space left on device ("), errors
    assert errors[0].endswith("the partial build was removed")
    assert not out.exists()
