"""Which device a step computes on, and why a GPU step with no usable CUDA fails at once.

One home for the device decision of every layer: the checkpoint operations (:mod:`saemerge.ops`,
through :func:`torch_device`), the merge steps (:func:`merge_device`) and the evaluation
(:func:`resolve_device`; :mod:`saemerge.evaluate.device` keeps the evaluation's batch rule).
Importing it does not import torch (preflight and the pipeline read its variable names).

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
from typing import TYPE_CHECKING

from saemerge.errors import SaeMergeError

if TYPE_CHECKING:
    import torch

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
    import torch

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
    import torch

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


def torch_device(device: str | None) -> torch.device:
    """A checkpoint operation's device as a ``torch.device``: 'cpu', 'cuda', 'cuda:N' or None
    (cpu). Asking for CUDA without it is an error, not a fallback, naming torch's CUDA build and
    the driver (:func:`merge_device`).

    Raises:
        SaeMergeError: any other name, or ``cuda[:N]`` and CUDA is not usable.
    """
    import torch

    name = (device or "cpu").lower()
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        return torch.device(merge_device(name))
    raise SaeMergeError(f"--device {device!r}: expected cpu, cuda or cuda:N")
