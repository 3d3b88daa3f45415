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
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from saemerge.errors import SaeMergeError

REQUIRE_GPU_ENV = "SAEMERGE_EVAL_GPU"
REQUIRED = "required"
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


def resolve_device(device: str | None) -> str:
    """``auto`` -> ``cuda`` or ``cpu``; ``cuda[:N]`` and ``cpu`` as given, checked.

    Raises:
        SaeMergeError: CUDA is not usable and the device is ``cuda[:N]``, or ``auto`` in a
            step compiled with a GPU (:data:`REQUIRE_GPU_ENV`).
    """
    wanted = device or "auto"
    if wanted == "cpu" or (wanted != "auto" and not wanted.startswith("cuda")):
        return wanted
    if torch.cuda.is_available():
        return "cuda" if wanted == "auto" else wanted
    if wanted == "auto" and not gpu_required():
        return "cpu"
    where = "this step was compiled with a GPU" if gpu_required() else "this machine"
    raise SaeMergeError(
        f"device {wanted}: CUDA is not usable ({where}): {cuda_diagnosis()}; "
        "fix the node's driver or device plugin, or score on the CPU with device cpu (eval_device=cpu)"
    )
