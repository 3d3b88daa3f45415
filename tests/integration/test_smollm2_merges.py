"""`saemerge merge` and `saemerge prune` on a real pretrained LLM (SmolLM2-135M-Instruct and two
experts derived from it, tests/support/smollm2.py): every output keeps the tied embedding (no
separate head written, config still tied), loads in transformers with ``lm_head`` tied to
``embed_tokens``, answers in the chat template, and is the method's merge of the inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tests.support.smollm2 import chat_reply

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EMBED = "model.embed_tokens.weight"
BLOCK = "model.layers.7.mlp.up_proj.weight"  # a prunable block matrix

# method: extra arguments of `saemerge merge`
METHODS = {
    "linear": [],
    "task_arithmetic": [],
    "ties": ["--density", "0.2"],
    "dare_ties": ["--drop-p", "0.8", "--seed", "3"],
    "sae": ["--scores", "0.6", "0.4", "--sparsity", "0.5"],
}


def _tensors(path: Path, names=(EMBED, BLOCK)) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            keys = set(h.keys())
            assert "lm_head.weight" not in keys, f"{path}: a separate lm_head tensor was written"
            out.update({k: h.get_tensor(k) for k in names if k in keys})
    return out


def _saemerge(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "saemerge", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def inputs(smollm2):
    return {name: _tensors(path) for name, path in smollm2.items()}


@pytest.fixture(scope="module")
def outputs(smollm2, tmp_path_factory):
    """Runs each method once (module scope): {method: output dir}, and "prune"; deleted after."""
    root = tmp_path_factory.mktemp("smollm2-merges")
    experts = [str(smollm2["expert_a"]), str(smollm2["expert_b"])]
    out = {}
    for method, extra in METHODS.items():
        out[method] = root / method
        base = [] if method == "linear" else ["--base", str(smollm2["base"])]
        _saemerge("merge", "--method", method, "--models", *experts, *base, *extra, "--out", str(out[method]))
    out["prune"] = root / "prune"
    _saemerge("prune", "--sparsity", "0.6", "--base", str(smollm2["base"]), "--out", str(out["prune"]), experts[0])
    yield out
    shutil.rmtree(root, ignore_errors=True)  # 3.2 GB, which pytest's kept temporary directories would hold


@pytest.mark.parametrize("method", [*METHODS, "prune"])
def test_the_output_keeps_the_tied_head_and_answers(method, outputs, inputs):
    out = outputs[method]
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is True and config["num_hidden_layers"] == 30
    assert (out / "chat_template.jinja").is_file()
    merged = _tensors(out)
    for name in (EMBED, BLOCK):
        assert not torch.equal(merged[name], inputs["base"][name]), name
        assert not torch.equal(merged[name], inputs["expert_b"][name]), name
    reply = chat_reply(out, "What is the capital of France?")  # raises if lm_head is not tied
    assert sum(c.isalpha() for c in reply) > 10, reply


def test_each_method_computes_its_merge(outputs, inputs):
    base, a, b = inputs["base"], inputs["expert_a"], inputs["expert_b"]
    for name in (EMBED, BLOCK):
        ta, tb = a[name] - base[name], b[name] - base[name]
        assert torch.allclose(_tensors(outputs["linear"])[name], (a[name] + b[name]) / 2, atol=1e-7, rtol=0)
        assert torch.allclose(_tensors(outputs["task_arithmetic"])[name], base[name] + ta + tb, atol=1e-7, rtol=0)

        # TIES, written out: trim each τ to its top 20 % by |τ| (ties at the threshold: lowest flat
        # index), elect the sign of the sum (+ at 0), average the agreeing entries
        def trim(t):
            k = int(0.2 * t.numel())
            order = torch.sort(t.abs().reshape(-1), descending=True, stable=True).indices[:k]
            keep = torch.zeros(t.numel(), dtype=torch.bool)
            keep[order] = True
            return t * keep.view(t.shape)

        ha, hb = trim(ta), trim(tb)
        sign = torch.where(ha + hb >= 0, 1.0, -1.0)
        agree_a, agree_b = (ha * sign) > 0, (hb * sign) > 0
        count = (agree_a.float() + agree_b.float()).clamp(min=1)
        ties = base[name] + (ha * agree_a + hb * agree_b) / count
        assert torch.allclose(_tensors(outputs["ties"])[name], ties, atol=1e-7, rtol=0), name

        # DARE-TIES: about (1 - p) of each τ's non-zero entries survive, rescaled by 1 / (1 - p)
        dare = _tensors(outputs["dare_ties"])[name] - base[name]
        expected = 1 - (1 - 0.2 * (ta != 0).float().mean()) * (1 - 0.2 * (tb != 0).float().mean())
        assert abs((dare != 0).float().mean() - expected) < 0.01, name
        assert dare.abs().max() > 3 * torch.maximum(ta.abs(), tb.abs()).max(), name  # rescaled by 5

    # SAE's child and prune: the task vector of a block matrix is sparse, the embedding is not pruned
    sae = _tensors(outputs["sae"])
    assert (sae[BLOCK] - base[BLOCK] == 0).float().mean() >= 0.5
    pruned = _tensors(outputs["prune"])
    kept = int((pruned[BLOCK] != base[BLOCK]).sum())
    assert kept <= -(-4 * base[BLOCK].numel() // 10)  # ceil(0.4 n): sparsity 0.6 of the task vector
    changed = pruned[BLOCK] != base[BLOCK]
    assert torch.equal(pruned[BLOCK][changed], a[BLOCK][changed])  # survivors are expert_a's values
    assert torch.equal(pruned[EMBED], a[EMBED])
