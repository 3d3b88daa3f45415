"""eval_batch_size 0 (the default): 16 on the CPU, as before; on CUDA the rule by model size and GPU
memory (saemerge.evaluate.device.cuda_batch_size); bf16 on a CUDA GPU that has it."""

import pytest
import torch

from saemerge.config import RunConfig
from saemerge.evaluate import hf
from saemerge.evaluate.device import CPU_BATCH, CUDA_BATCH_MAX, cuda_batch_size

LLAMA_3B = {"num_hidden_layers": 28, "num_attention_heads": 24, "hidden_size": 3072, "num_key_value_heads": 8}
SMOLLM_135M = {"num_hidden_layers": 30, "num_attention_heads": 9, "hidden_size": 576, "num_key_value_heads": 3}
GB = 10**9


def test_the_rule_fills_the_memory_the_weights_leave_in_powers_of_two():
    assert cuda_batch_size({**LLAMA_3B, "head_dim": 128}, int(6.4 * GB), 80 * GB) == 128
    assert cuda_batch_size(SMOLLM_135M, int(0.27 * GB), 80 * GB) == CUDA_BATCH_MAX
    seven_b = {"num_hidden_layers": 32, "num_attention_heads": 32, "hidden_size": 4096, "num_key_value_heads": 8}
    assert cuda_batch_size(seven_b, 15 * GB, 24 * GB) == 16
    assert cuda_batch_size(seven_b, 15 * GB, 16 * GB) == 2
    assert cuda_batch_size(seven_b, 15 * GB, 14 * GB) == 1  # does not fit: 1, and the load will say so
    sizes = [cuda_batch_size(seven_b, 15 * GB, g * GB) for g in (16, 24, 40, 80, 141)]
    assert sizes == sorted(sizes) and all(s & (s - 1) == 0 for s in sizes)


class _Reader:
    config = SMOLLM_135M

    class _Info:
        numel = 135_000_000
        dtype = torch.float32

    infos = [_Info()]


def test_on_the_cpu_the_default_is_the_old_16_and_a_given_batch_stays():
    assert (
        RunConfig.from_params(
            {"run_uri": "s3://b/r", "experts": ["s3://b/e"], "base_uri": "s3://b/base", "data_uri": "s3://b/d"}
        ).eval_batch_size
        == 0
    )
    assert hf.batch_size_for(0, "cpu", _Reader(), "float32") == CPU_BATCH == 16
    assert hf.batch_size_for(64, "cpu", _Reader(), "float32") == 64
    assert hf.batch_size_for(8, "cuda", _Reader(), "bfloat16") == 8  # a run that names its batch keeps it
    assert hf.batch_size_for("auto", "cuda", _Reader(), "bfloat16") == "auto"


def test_on_cuda_the_default_follows_the_gpus_memory(monkeypatch):
    class Props:
        total_memory = 80 * GB

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Props())
    assert hf.batch_size_for(0, "cuda", _Reader(), "bfloat16") == CUDA_BATCH_MAX


@pytest.mark.parametrize(("bf16", "want"), [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_is_bf16_on_a_gpu_that_has_it(monkeypatch, bf16, want):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert hf._torch_dtype("auto", _Reader(), "cuda:0") == want
    assert hf._torch_dtype("auto", _Reader(), "cpu") == "float32"  # the CPU as before
    assert hf._torch_dtype("float16", _Reader(), "cuda:0") == "float16"  # unless the run says otherwise
