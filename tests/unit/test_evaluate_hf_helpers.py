"""Model-directory checks and device/dtype choices of the HF backend (no HFLM built)."""

from __future__ import annotations

import os

import pytest
import torch

from saemerge.errors import SaeMergeError
from saemerge.evaluate import hf
from saemerge.evaluate.hf import _torch_dtype, check_model_dir, resolve_device, set_cpu_threads, usable_cores
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
        with pytest.raises(SaeMergeError, match="--device cuda:1: CUDA is not available"):
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
        monkeypatch.setattr(hf, "_cgroup_quota", lambda: 1.5)  # a container limited to 1.5 CPUs
        assert usable_cores() == min(2, len(os.sched_getaffinity(0)))
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert set_cpu_threads() == usable_cores() == torch.get_num_threads()
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        monkeypatch.setattr(hf, "_cgroup_quota", lambda: None)
        assert set_cpu_threads() == 1  # a thread count the environment gives is kept
    finally:
        torch.set_num_threads(before)
