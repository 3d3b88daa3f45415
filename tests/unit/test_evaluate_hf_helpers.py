"""Model-directory checks and device/dtype choices of the HF backend (no HFLM built)."""

from __future__ import annotations

import os

import pytest
import torch

from saemerge import cpus
from saemerge.cpus import usable_cores
from saemerge.errors import SaeMergeError
from saemerge.evaluate.hf import _torch_dtype, check_model_dir, resolve_device, set_cpu_threads
from tests.support.tinymodels import llama_config, random_state_dict, write_checkpoint


@pytest.fixture(scope="module")
def bf16_model(tmp_path_factory):
    config = llama_config(vocab_size=320, hidden=16, layers=1)
    return write_checkpoint(tmp_path_factory.mktemp("bf16"), random_state_dict(config, 0, torch.bfloat16), config)


def test_auto_dtype_is_the_checkpoints_except_half_on_cpu(bf16_model):
    reader = check_model_dir(bf16_model)
    assert _torch_dtype("auto", reader, "cpu") == "float32"
    assert _torch_dtype("auto", reader, "cuda") == "bfloat16"
    assert _torch_dtype("float16", reader, "cpu") == "float16"
    with pytest.raises(SaeMergeError, match="unknown dtype 'bf16'"):
        _torch_dtype("bf16", reader, "cpu")


def test_device_choice():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(SaeMergeError, match="device cuda:1: CUDA is not usable"):
            resolve_device("cuda:1")


def test_model_directory_checks(bf16_model, tmp_path):
    with pytest.raises(SaeMergeError, match="no such model directory"):
        check_model_dir(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SaeMergeError, match="config.json is missing"):
        check_model_dir(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text((bf16_model / "config.json").read_text())
    with pytest.raises(SaeMergeError, match="no tokenizer"):
        check_model_dir(tmp_path / "empty")
    (tmp_path / "empty" / "tokenizer.json").write_text((bf16_model / "tokenizer.json").read_text())
    with pytest.raises(SaeMergeError, match="no model.safetensors"):
        check_model_dir(tmp_path / "empty")


def test_cpu_threads_follow_omp_num_threads_or_the_usable_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(cpus, "_cgroup_quota", lambda: 1.5)  # a container limited to 1.5 CPUs
        assert usable_cores() == min(2, len(os.sched_getaffinity(0)))
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv(cpus.EVAL_THREADS_ENV, raising=False)
        assert set_cpu_threads() == usable_cores() == torch.get_num_threads()
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        monkeypatch.setattr(cpus, "_cgroup_quota", lambda: None)
        assert set_cpu_threads() == 1  # a thread count the environment gives is kept
    finally:
        torch.set_num_threads(before)


def test_eval_threads_setting_wins_and_idle_takes_the_cores_not_busy(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as the local runner gives every step
        monkeypatch.setattr(cpus, "usable_cores", lambda: 4)
        monkeypatch.setenv(cpus.EVAL_THREADS_ENV, "3")
        assert set_cpu_threads() == 3 == torch.get_num_threads()
        monkeypatch.setenv(cpus.EVAL_THREADS_ENV, cpus.IDLE)
        for busy, threads in ((0.1, 4), (1.4, 3), (2.6, 1), (9.0, 1)):
            monkeypatch.setattr(cpus.CoreProbe, "busy", lambda self, busy=busy: busy)
            assert set_cpu_threads() == threads, busy
        for bad in ("0", "two", "-1"):
            monkeypatch.setenv(cpus.EVAL_THREADS_ENV, bad)
            with pytest.raises(SaeMergeError, match=f"SAEMERGE_EVAL_THREADS={bad!r}"):
                set_cpu_threads()
    finally:
        torch.set_num_threads(before)


def test_busy_cores_is_the_machines_non_idle_share_over_the_interval(monkeypatch):
    samples = iter([(10_000, 4_000), (10_400, 4_300)])  # 400 ticks, 300 of them idle: a quarter busy
    monkeypatch.setattr(cpus, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 4)
    assert cpus.busy_cores(interval=0.0) == pytest.approx(1.0)

    def no_proc_stat():
        raise OSError("no /proc/stat")

    # Where there is no /proc/stat, the 1-minute load average stands in.
    monkeypatch.setattr(cpus, "_cpu_times", no_proc_stat)
    monkeypatch.setattr(cpus.os, "getloadavg", lambda: (1.7, 0.0, 0.0))
    assert cpus.busy_cores(interval=0.0) == 1.7
    # On this machine the real counters give a value between none and every core.
    monkeypatch.undo()
    assert 0.0 <= cpus.busy_cores(interval=0.05) <= (os.cpu_count() or 1)


def _stub_counters(monkeypatch):
    # 400 ticks of 4 cores, 200 idle: 200 busy, 100 of them this process's own -> 1 core of others
    samples = iter([(10_000, 4_000), (10_400, 4_200)])
    own = iter([50.0, 150.0])
    monkeypatch.setattr(cpus, "_cpu_times", lambda: next(samples))
    monkeypatch.setattr(cpus, "_own_ticks", lambda: next(own))
    monkeypatch.setattr(cpus.os, "cpu_count", lambda: 4)


def test_core_probe_leaves_out_this_processs_own_cpu_time(monkeypatch):
    _stub_counters(monkeypatch)
    assert cpus.CoreProbe(min_interval=0.0).busy() == pytest.approx(1.0)
    _stub_counters(monkeypatch)
    monkeypatch.setattr(cpus, "usable_cores", lambda: 4)
    assert cpus.idle_cores(cpus.CoreProbe(min_interval=0.0)) == 3


def test_core_probe_waits_out_its_window_and_leaves_out_this_process_working():
    import time

    total0, idle0 = cpus._cpu_times()
    probe = cpus.CoreProbe(min_interval=0.5)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:  # this process keeps one core busy for the whole window
        sum(range(1000))
    start = time.monotonic()
    busy = probe.busy()
    total1, idle1 = cpus._cpu_times()
    assert time.monotonic() - start < 0.1  # the window had passed: no extra wait
    machine = (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)
    # the machine's busy cores include this process's one (less what a loaded host takes from
    # it); the probe's do not
    assert machine - busy > 0.3, (machine, busy)
    assert busy >= 0.0
