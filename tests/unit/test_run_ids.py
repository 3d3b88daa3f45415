"""Run ids are one safe path segment, checked where they enter (LocalRun, the CLI)."""

import subprocess
import sys

import pytest

from saemerge.errors import SaeMergeError
from saemerge.pipeline.local import LocalRun
from saemerge.runlog import check_run_id


@pytest.mark.parametrize("bad", ["../../etc", "..", "a/b", "", "-x", ".hidden", "a b", "x" * 129, "a..b", "/abs"])
def test_bad_run_ids_are_refused(bad, tmp_path):
    with pytest.raises(SaeMergeError, match="run id is 1-128 letters"):
        LocalRun(run_id=bad, workdir=tmp_path)


@pytest.mark.parametrize("good", ["sae-20260101-120000", "r1", "study_3.seed-2", "A" * 128])
def test_good_run_ids_pass(good):
    assert check_run_id(good) == good


def test_the_cli_refuses_a_traversing_run_id_before_making_anything(tmp_path):
    work = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(work), "--run-id", "../../escape"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "--run-id '../../escape': a run id is" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not work.exists() and not (tmp_path / "escape").exists()
