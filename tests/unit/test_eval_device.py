"""The evaluate and merge steps' device decision with CUDA unavailable (this machine, or CUDA made unusable).

A step compiled with a GPU (``SAEMERGE_EVAL_GPU=required``, set by the compiled pipeline's pod
annotation) must fail at once with one line naming torch's CUDA build and the driver found;
``auto`` elsewhere (the local runner) keeps scoring on the CPU, and ``cpu`` is always the CPU.
"""

from __future__ import annotations

import time

import pytest
import torch

from saemerge import devices as device
from saemerge.devices import GPU_MERGES_ENV, REQUIRE_GPU_ENV, merge_device, nvidia_driver, resolve_device
from saemerge.errors import SaeMergeError

DRIVER_FILE = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
)


@pytest.fixture
def no_cuda(monkeypatch, tmp_path):
    """CUDA unusable as on a node whose driver is older than the wheel's CUDA needs."""

    def init():
        raise RuntimeError("The NVIDIA driver on your system is too old (found version 12020).\nmore")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    version_file = tmp_path / "version"
    version_file.write_text(DRIVER_FILE)
    monkeypatch.setattr(device, "DRIVER_VERSION_FILE", version_file)
    monkeypatch.delenv(REQUIRE_GPU_ENV, raising=False)
    monkeypatch.delenv(GPU_MERGES_ENV, raising=False)
    return version_file


def _assert_one_line_diagnosis(message: str, device: str, fix: str) -> None:
    """The GPU steps' refusal: one line with torch's CUDA build, the driver, torch's reason, the fix."""
    assert "\n" not in message
    assert message.startswith(f"device {device}: CUDA is not usable (this step was compiled with a GPU)")
    assert "built for CUDA 13.0" in message and "NVIDIA driver 535.104.05" in message
    assert "torch says: The NVIDIA driver on your system is too old (found version 12020)." in message
    assert fix in message


def test_auto_falls_back_to_the_cpu_where_no_gpu_was_promised(no_cuda):
    assert resolve_device("auto") == "cpu"
    assert resolve_device(None) == "cpu"


def test_auto_in_a_step_compiled_for_a_gpu_fails_with_one_line(no_cuda, monkeypatch):
    monkeypatch.setenv(REQUIRE_GPU_ENV, "required")
    with pytest.raises(SaeMergeError) as err:
        resolve_device("auto")
    _assert_one_line_diagnosis(str(err.value), "auto", "eval_device=cpu")


def test_cpu_stays_the_explicit_way_to_score_on_the_cpu(no_cuda, monkeypatch):
    monkeypatch.setenv(REQUIRE_GPU_ENV, "required")
    assert resolve_device("cpu") == "cpu"


def test_cuda_asked_for_without_cuda_names_the_missing_driver(no_cuda):
    no_cuda.unlink()
    with pytest.raises(SaeMergeError, match=r"device cuda:1: CUDA is not usable \(this machine\)") as err:
        resolve_device("cuda:1")
    assert "no NVIDIA driver found" in str(err.value)


def test_a_cpu_wheel_says_it_has_no_cuda(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(device, "DRIVER_VERSION_FILE", tmp_path / "absent")
    monkeypatch.setenv(REQUIRE_GPU_ENV, "required")
    with pytest.raises(SaeMergeError, match=r"torch \S+ \(no CUDA\), no NVIDIA driver found"):
        resolve_device("auto")


def test_the_open_kernel_modules_version_is_read(tmp_path):
    f = tmp_path / "version"
    f.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n")
    assert nvidia_driver(f) == "570.86.15"


def test_the_evaluate_step_decides_before_fetching_anything(no_cuda, monkeypatch):
    """The factory the evaluate components build first fails: no model is read, in well under a second."""
    from saemerge.steps.evaluation import lm_eval_evaluator

    monkeypatch.setenv(REQUIRE_GPU_ENV, "required")
    start = time.monotonic()
    with pytest.raises(SaeMergeError, match="CUDA is not usable"):
        lm_eval_evaluator("auto", "auto", 8)
    assert time.monotonic() - start < 5
    monkeypatch.delenv(REQUIRE_GPU_ENV)
    assert lm_eval_evaluator("auto", "auto", 8).kwargs["device"] == "cpu"


# ---------------------------------------------------------------- prune and merge steps (--gpu-merges)


def test_a_merge_step_compiled_with_gpu_merges_fails_with_one_line(no_cuda, monkeypatch):
    monkeypatch.setenv(GPU_MERGES_ENV, "true")
    with pytest.raises(SaeMergeError) as err:
        merge_device("cuda")
    _assert_one_line_diagnosis(str(err.value), "cuda", "merge_device=cpu")


def test_merge_device_cpu_stays_the_explicit_way_to_merge_on_the_cpu(no_cuda, monkeypatch, caplog):
    monkeypatch.setenv(GPU_MERGES_ENV, "true")
    assert merge_device("cpu") == "cpu"
    assert "the GPU idles" in caplog.text
    monkeypatch.setenv(GPU_MERGES_ENV, "false")
    caplog.clear()
    assert merge_device(None) == "cpu" and caplog.text == ""


def test_the_ops_name_the_driver_when_cuda_is_asked_for(no_cuda):
    """`saemerge merge --device cuda` and every op: the same diagnosis, not a bare refusal."""
    from saemerge.ops.common import resolve_device as op_device

    with pytest.raises(SaeMergeError, match=r"device cuda:0: CUDA is not usable \(this machine\).*NVIDIA driver 535"):
        op_device("cuda:0")
    assert op_device("cpu") == torch.device("cpu")


def test_one_device_decision_below_evaluate_and_ops():
    """saemerge.devices is the one home; the old paths hand out the very same functions, and
    importing it does not import torch (preflight and the pipeline read its variable names)."""
    import subprocess
    import sys

    from saemerge import devices
    from saemerge.evaluate import device as old
    from saemerge.ops import common

    assert old.resolve_device is devices.resolve_device and old.merge_device is devices.merge_device
    assert common.resolve_device is devices.torch_device
    code = "import sys, saemerge.devices; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _merge_steps(missing: str):
    """Each model-making step with inputs that do not exist: reading any of them is an error of its own."""
    from saemerge.steps import m2n2, models, pso

    parent = {"id": "m-a", "content_hash": "a" * 64, "uri": missing, "score": 0.5, "sparsity": 0.0}
    run = missing + "-run"
    return {
        "prune": lambda d: models.prune_variant(
            run, {"source": missing, "name": "math", "sparsity": 0.5}, base_uri=missing, device=d
        ),
        "pair-and-merge": lambda d: models.pair_and_merge(
            run, {"generation": 0, "index": 0, "s_t": 0.5, "a": parent, "b": parent, "archive_hashes": []},
            base_uri=missing, device=d,
        ),
        "crossover": lambda d: m2n2.crossover(
            run, {"a": parent, "b": parent, "t": 0.5, "split_u": 0.5, "generation": 0, "index": 0},
            base_uri=missing, device=d,
        ),
        "pso-particle": lambda d: pso.make_particle(
            run, {"source": missing, "particle": "math", "drop_p": 0.0, "seed": 0}, base_uri=missing, device=d
        ),
        "pso-move": lambda d: pso.move_particle(
            run, {"particle": "math", "x": parent, "pbest": parent, "gbest": parent}, 0,
            base_uri=missing, seed=0, w=0.5, c1=1.0, c2=1.0, device=d,
        ),
    }  # fmt: skip


@pytest.mark.parametrize("step", ["prune", "pair-and-merge", "crossover", "pso-particle", "pso-move"])
def test_every_merge_step_decides_before_reading_anything(no_cuda, monkeypatch, tmp_path, step):
    """Compiled with --gpu-merges and asked for cuda, a prune/merge step fails on CUDA first, in
    well under 5 s, before it looks at a single input (these do not exist)."""
    monkeypatch.setenv(GPU_MERGES_ENV, "true")
    run = _merge_steps(str(tmp_path / "missing"))[step]
    start = time.monotonic()
    with pytest.raises(SaeMergeError, match=r"^device cuda: CUDA is not usable \(this step was compiled with a GPU\)"):
        run("cuda")
    assert time.monotonic() - start < 5
    with pytest.raises(Exception) as other:  # on the CPU, the same call gets as far as its inputs
        run("cpu")
    assert "CUDA" not in str(other.value)
