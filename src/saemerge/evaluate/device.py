"""Which device an evaluation runs on, and why a GPU step with no usable CUDA fails at once.

``eval_device`` is ``auto`` (CUDA when usable), ``cuda``, ``cuda:N`` or ``cpu``. ``auto``
falls back to the CPU only where no GPU was promised: a pod compiled with a GPU for its
evaluation carries ``SAEMERGE_EVAL_GPU=required`` (a pod annotation read through the Downward
API: :mod:`saemerge.pipeline.resources`; ``kfp.local`` ignores that config, so the local
runner scores on the CPU as before). There, CUDA that torch cannot use (an NVIDIA driver older
than the wheel's CUDA needs, a missing device plugin) fails the step within seconds with one
line naming ``torch.version.cuda`` and the driver found, instead of scoring a 7B model on a
few CPU cores for hours while holding the GPU. ``eval_device=cpu`` stays the explicit way
to score on the CPU anywhere.

Prune and merge steps get the same guarantee (:func:`merge_device`): compiled with
``--gpu-merges`` their pods hold a GPU and carry ``SAEMERGE_GPU_MERGES=true``, and a step asked
for ``merge_device=cuda`` with CUDA unusable fails before it reads any checkpoint, with the
same line. ``merge_device`` has no ``auto``: ``cpu`` (its default) merges on the CPU anywhere.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from saemerge.errors import SaeMergeError

log = logging.getLogger(__name__)

REQUIRE_GPU_ENV = "SAEMERGE_EVAL_GPU"
REQUIRED = "required"
# Set on every pod of a pipeline (pipeline.resources.apply): "true" when compiled with --gpu-merges.
GPU_MERGES_ENV = "SAEMERGE_GPU_MERGES"
DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")


def nvidia_driver(version_file: Path | None = None) -> str | None:
    """The loaded NVIDIA kernel driver's version (``/proc/driver/nvidia/version``), or None."""
    try:
        text = (version_file or DRIVER_VERSION_FILE).read_text()
    except OSError:
        return None
    m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]*)", text)
    if m:
        return m.group(1)
    return text.strip().splitlines()[0][:80] if text.strip() else None


def cuda_diagnosis(version_file: Path | None = None) -> str:
    """Why torch cannot use CUDA here, in a clause: its CUDA build, the driver, torch's reason."""
    built = torch.version.cuda
    parts = [f"torch {torch.__version__} built for CUDA {built}" if built else f"torch {torch.__version__} (no CUDA)"]
    driver = nvidia_driver(version_file)
    parts.append(f"NVIDIA driver {driver}" if driver else "no NVIDIA driver found (no /proc/driver/nvidia/version)")
    if built:
        try:  # torch keeps its reason from is_available(); init() raises it
            torch.cuda.init()
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            parts.append(f"torch says: {reason[:160]}")
    return ", ".join(parts)


def gpu_required() -> bool:
    return os.environ.get(REQUIRE_GPU_ENV, "").strip().lower() == REQUIRED


def gpu_merges() -> bool:
    """This pod's pipeline was compiled with ``--gpu-merges`` (its prune and merge steps hold a GPU)."""
    return os.environ.get(GPU_MERGES_ENV, "").strip().lower() == "true"


def resolve_device(device: str | None, *, promised: bool | None = None, cpu_hint: str = "eval_device=cpu") -> str:
    """``auto`` -> ``cuda`` or ``cpu``; ``cuda[:N]`` and ``cpu`` as given, checked.

    Args:
        promised: a GPU was compiled into this step (default: :data:`REQUIRE_GPU_ENV`).
        cpu_hint: the parameter setting that runs the step on the CPU, for the message.

    Raises:
        SaeMergeError: CUDA is not usable and the device is ``cuda[:N]``, or ``auto`` in a
            step compiled with a GPU (:data:`REQUIRE_GPU_ENV`).
    """
    promised = gpu_required() if promised is None else promised
    wanted = device or "auto"
    if wanted == "cpu" or (wanted != "auto" and not wanted.startswith("cuda")):
        return wanted
    if torch.cuda.is_available():
        return "cuda" if wanted == "auto" else wanted
    if wanted == "auto" and not promised:
        return "cpu"
    where = "this step was compiled with a GPU" if promised else "this machine"
    raise SaeMergeError(
        f"device {wanted}: CUDA is not usable ({where}): {cuda_diagnosis()}; "
        f"fix the node's driver or device plugin, or run on the CPU with device cpu ({cpu_hint})"
    )


def merge_device(device: str | None) -> str:
    """A prune or merge step's device, decided before the step reads anything: ``cuda[:N]``
    must be usable (else one line, at once, as :func:`resolve_device`); ``cpu`` is as given
    (in a step compiled with GPU merges too, where it leaves the step's GPU idle: logged).

    Raises:
        SaeMergeError: ``cuda[:N]`` and CUDA is not usable.
    """
    wanted = (device or "cpu").lower()
    if wanted == "cpu":
        if gpu_merges():
            log.warning("merge_device cpu in a step compiled with --gpu-merges: merging on the CPU, the GPU idles")
        return wanted
    return resolve_device(wanted, promised=gpu_merges(), cpu_hint="merge_device=cpu")


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
