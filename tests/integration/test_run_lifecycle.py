"""`saemerge run --local` owns what it starts: a second driver on the same run is refused, and
killing the driver (SIGKILL, no chance to clean up) stops every process of the run."""

import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_args(workdir, bucket, run_id):
    return [
        sys.executable,
        "-m",
        "saemerge",
        "run",
        "--local",
        "--workdir",
        str(workdir),
        "--bench-size",
        "micro",
        "--steps",
        "2",
        "--bucket",
        bucket,
        "--run-id",
        run_id,
        "--param",
        'opt_sizes={"saebench_math": 6, "saebench_multilingual": 6}',
        "--param",
        'test_sizes={"saebench_math": 8, "saebench_multilingual": 8}',
        "--param",
        "archive_size=4",
    ]


def test_second_driver_refused_and_sigkill_stops_the_whole_run(s3_env, micro_bench, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(micro_bench, workdir / "bench" / "micro-seed0")
    bucket, run_id = "saemerge-life", f"life-{os.getpid()}"
    driver = subprocess.Popen(
        _run_args(workdir, bucket, run_id), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        seen = []
        for line in driver.stdout:
            seen.append(line)
            if line.startswith(f"run {run_id}:"):  # the lease is held and the pipeline child started
                break
        else:
            pytest.fail("the run ended before it started its pipeline:\n" + "".join(seen[-40:]))
        time.sleep(3)  # let the child start its first steps

        second = subprocess.run(_run_args(workdir, bucket, run_id), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        assert f"run {run_id} is in use by pid {driver.pid}" in second.stderr

        family = psutil.Process(driver.pid).children(recursive=True)
        assert family, "the driver started no child"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        gone, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, [(p.pid, p.cmdline()) for p in alive if p.is_running()]
    finally:
        if driver.poll() is None:
            driver.kill()


def test_sigkill_stops_the_embedded_store_too(micro_bench, tmp_path):
    """Without S3 settings the driver starts its own store: that dies with it as well."""
    workdir = tmp_path / "work"
    shutil.copytree(micro_bench, workdir / "bench" / "micro-seed0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    driver = subprocess.Popen(
        _run_args(workdir, "saemerge", f"own-{os.getpid()}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        seen = []
        for line in driver.stdout:
            seen.append(line)
            if "run own-" in line:
                break
        else:
            pytest.fail("the run ended before it started its pipeline:\n" + "".join(seen[-40:]))
        family = psutil.Process(driver.pid).children(recursive=True)
        assert any("weed" in " ".join(p.cmdline()) for p in family), "the driver started no store"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        gone, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, [(p.pid, p.cmdline()) for p in alive if p.is_running()]
    finally:
        if driver.poll() is None:
            driver.kill()
