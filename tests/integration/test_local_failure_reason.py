"""A step that fails under kfp.local puts its one-line reason on the terminal: kfp.local indents a
step's output in its log, and the reason must be found there all the same."""

import re
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_an_input_error_in_a_step_is_the_terminals_one_line_without_a_resume_hint(s3_env, micro_bench, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(micro_bench, workdir / "bench" / "micro-seed0")
    bucket = "saemerge-test"
    args = ["run", "--local", "--workdir", str(workdir), "--bench-size", "micro", "--steps", "1", "--bucket", bucket]
    missing = f"s3://{bucket}/no-such-data"
    done = subprocess.run(
        [sys.executable, "-m", "saemerge", *args, "--run-id", "bad-data", "--param", f"data_uri={missing}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("saemerge: error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    line = errors[0]
    # the init step checks the data before any other step runs (the evaluate steps draw their samples later)
    assert re.match(r"saemerge: error: step 'init-population' failed: ", line), line
    assert missing in line and "no manifest.json" in line  # the step's own reason, as it raised it
    assert "see the log" not in line and "--resume" not in line
    assert line.endswith("fix the input and start a new run")
    log = (workdir / "runs" / "bad-data" / "kfp.log").read_text()
    assert re.search(rf"^ +saemerge\.errors\.SaeMergeError: .*{re.escape(missing)}", log, re.M)  # indented there
