"""Tiny real LLaMA checkpoints for tests and benchmarks.

No model hub is reachable, so tests and benchmarks build their own checkpoints: a
byte-level BPE tokenizer trained on a few sentences, a LLaMA config, and weights drawn
from a seeded generator. Experts are the base plus a seeded, sparse-ish task vector, so
they share the base's architecture exactly as fine-tuned experts do.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

_CORPUS = [
    "Natalia sold clips to 48 of her friends in April, and then half as many in May.",
    "Question: Which of the following is a fruit? Options: A. apple B. car C. stone D. cloud",
    "The answer is 72. #### 72",
    "Merge two experts into one model without retraining.",
]


def write_tokenizer(out: Path, vocab_size: int = 320) -> int:
    """Train a tiny byte-level BPE tokenizer, save it in transformers' format, return its length.

    The byte alphabet (256) and the specials come first, so the result has at least 259
    tokens and at most `vocab_size`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(str(out))
    return len(fast)


def llama_config(vocab_size: int = 320, hidden: int = 32, layers: int = 2, intermediate: int | None = None):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def random_state_dict(config, seed: int, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A LLaMA state dict with seeded N(0, 0.02) matrices and unit norms."""
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        shapes = {k: (v.shape, k.endswith("norm.weight")) for k, v in LlamaForCausalLM(config).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, (shape, is_norm) in shapes.items():
        t = torch.ones(shape) if is_norm else torch.randn(shape, generator=gen) * 0.02
        out[name] = t.to(dtype)
    return out


def expert_state_dict(
    base: dict[str, torch.Tensor], seed: int, scale: float = 0.01, density: float = 0.5
) -> dict[str, torch.Tensor]:
    """base + a seeded task vector with about `density` of its entries non-zero."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, w in base.items():
        delta = torch.randn(w.shape, generator=gen) * scale
        keep = torch.rand(w.shape, generator=gen) < density
        out[name] = (w.float() + delta * keep).to(w.dtype)
    return out


def write_checkpoint(
    out: Path,
    state_dict: dict[str, torch.Tensor],
    config,
    *,
    max_shard_size: str | int = "50GB",
    tokenizer_from: Path | None = None,
) -> Path:
    """Save a loadable HF checkpoint (safetensors, optionally sharded) with a tokenizer."""
    from transformers import LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config.dtype = str(next(iter(state_dict.values())).dtype).removeprefix("torch.")
    model = LlamaForCausalLM(config)
    model.load_state_dict({k: v.float() for k, v in state_dict.items()})
    model.to(next(iter(state_dict.values())).dtype)
    model.save_pretrained(str(out), max_shard_size=max_shard_size)
    if tokenizer_from is None:
        n_tokens = write_tokenizer(out, vocab_size=config.vocab_size)
        if n_tokens > config.vocab_size:
            raise ValueError(f"tokenizer has {n_tokens} tokens but the model only {config.vocab_size} embeddings")
    else:
        for f in Path(tokenizer_from).iterdir():
            if f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
                (out / f.name).write_bytes(f.read_bytes())
    return out


def write_family(
    root: Path,
    *,
    n_experts: int = 2,
    hidden: int = 32,
    layers: int = 2,
    vocab_size: int = 320,
    dtype: torch.dtype = torch.float32,
    max_shard_size: str | int = "50GB",
    seed: int = 0,
) -> dict[str, Path]:
    """A base and `n_experts` experts under `root`: {"base": ..., "expert0": ..., ...}."""
    root = Path(root)
    config = llama_config(vocab_size, hidden, layers)
    base_sd = random_state_dict(config, seed, dtype)
    paths = {"base": write_checkpoint(root / "base", base_sd, config, max_shard_size=max_shard_size)}
    for i in range(n_experts):
        sd = expert_state_dict(base_sd, seed + 1000 + i)
        paths[f"expert{i}"] = write_checkpoint(
            root / f"expert{i}", sd, config, max_shard_size=max_shard_size, tokenizer_from=paths["base"]
        )
    (root / "family.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
    return paths
