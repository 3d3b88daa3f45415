"""The evaluation's own device rules: the batch an evaluation runs with on each device.

Which device a step runs on (``eval_device``, ``merge_device``, the refusal of unusable CUDA)
lives in :mod:`saemerge.devices`; its names are re-exported here, the old path, for one release.
"""

from __future__ import annotations

from saemerge.devices import (
    DRIVER_VERSION_FILE,
    GPU_MERGES_ENV,
    REQUIRE_GPU_ENV,
    REQUIRED,
    cuda_diagnosis,
    gpu_merges,
    gpu_required,
    merge_device,
    nvidia_driver,
    resolve_device,
)

__all__ = [
    "CPU_BATCH",
    "CUDA_BATCH_MAX",
    "CUDA_SEQUENCE",
    "CUDA_WORKSPACE",
    "DRIVER_VERSION_FILE",
    "GPU_MERGES_ENV",
    "REQUIRED",
    "REQUIRE_GPU_ENV",
    "cuda_batch_size",
    "cuda_diagnosis",
    "gpu_merges",
    "gpu_required",
    "merge_device",
    "nvidia_driver",
    "resolve_device",
]

# eval_batch_size 0 ("by device"): the CPU's batch, and the CUDA rule's bounds and assumptions.
CPU_BATCH = 16
CUDA_BATCH_MAX = 512
CUDA_SEQUENCE = 2048  # tokens a sequence may hold (prompt + generation), for its KV cache
CUDA_WORKSPACE = 0.25  # share of the memory left after the weights kept for activations and the allocator


def cuda_batch_size(model_config: dict, weight_bytes: int, gpu_bytes: int, sequence: int = CUDA_SEQUENCE) -> int:
    """The evaluation batch on a CUDA GPU: as many sequences as their KV caches fit in the GPU's
    memory beside the weights, a power of two between 1 and :data:`CUDA_BATCH_MAX`.

    A sequence's KV cache is 2 (keys, values) x layers x KV heads x head size x `sequence`
    tokens x 2 bytes (bf16). Of the memory the weights leave, :data:`CUDA_WORKSPACE` is kept
    for activations and the allocator. E.g. a 3B Llama (28 layers, 8 KV heads of 128) on an
    80 GB GPU: 235 MB a sequence, batch 128; a 135M SmolLM (30 layers, 3 KV heads of 64): 512.
    """
    layers = int(model_config.get("num_hidden_layers") or 1)
    heads = int(model_config.get("num_attention_heads") or 1)
    hidden = int(model_config.get("hidden_size") or 1)
    kv_heads = int(model_config.get("num_key_value_heads") or heads)
    head_dim = int(model_config.get("head_dim") or hidden // heads)
    per_sequence = 2 * layers * kv_heads * head_dim * sequence * 2
    room = (gpu_bytes - weight_bytes) * (1 - CUDA_WORKSPACE)
    fits = int(room // per_sequence) if room > 0 else 1
    batch = 1
    while batch * 2 <= min(fits, CUDA_BATCH_MAX):
        batch *= 2
    return batch
