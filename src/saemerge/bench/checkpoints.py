"""Model config, saving and loading for the benchmark's LLaMA checkpoints (HF format, safetensors)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from saemerge.bench.sizes import BenchSize
from saemerge.errors import SaeMergeError


def llama_config(size: BenchSize, tokenizer):
    """A LLaMA config for ``size`` with the tokenizer's vocabulary and special ids."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        # RoPE has no learned positions; a roomy limit lets lm-eval fit few-shot prompts.
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,  # merging treats embeddings and the LM head separately
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def new_model(config, seed: int):
    """A freshly initialised LlamaForCausalLM (fp32), seeded."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


#: The files ``save_pretrained`` writes for the model (the rest of a checkpoint is the tokenizer's).
MODEL_FILES = frozenset({"config.json", "model.safetensors", "generation_config.json", "manifest.json"})


def save_checkpoint(model, tokenizer, out: Path, *, tokenizer_from: Path | None = None) -> Path:
    """Save weights (single safetensors file, fp32), config, generation config and tokenizer.

    Args:
        tokenizer_from: copy the tokenizer's files from this checkpoint instead of saving
            ``tokenizer`` (an expert takes its base's files byte for byte: a tokenizer loaded
            from disk saves two more keys than the one the build trained).
    """
    from transformers import GenerationConfig

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    model.to("cpu").save_pretrained(str(out), safe_serialization=True)
    if tokenizer_from is None:
        tokenizer.save_pretrained(str(out))
    else:
        for f in Path(tokenizer_from).iterdir():
            if f.is_file() and f.name not in MODEL_FILES:
                shutil.copyfile(f, out / f.name)
    for f in out.iterdir():  # safetensors writes 0600; checkpoints are shared read-only data
        f.chmod(0o644)
    return out


def load_model(path: Path, device: str = "cpu"):
    """Load a checkpoint from a local directory in eval mode (no hub, no remote code)."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise SaeMergeError(f"{path}: not a checkpoint directory (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    return model.to(device).eval()  # type: ignore[arg-type]  # transformers types .to() oddly
