"""The bench's two experts: fine-tuning one from the base, and training both at once.

:func:`train_expert` is the one recipe for an expert (the build and the experts' tuning
sweeps use it): the base fine-tuned on its task's training split with the evaluator's exact
prompts, loss on the answer only, no weight decay towards 0, and the size's
``expert_anchor`` (L2-SP) and ``expert_scale_cycle`` (both off for the ``plain`` size).

:func:`train_experts_concurrently` trains the multilingual expert in a second process with one
thread while this process trains the math expert with one thread: on a machine with two free
cores the two run side by side instead of one after the other. One and two threads give the
same bytes (:mod:`saemerge.bench.numerics`), and the second process reads the base, the
tokenizer and the training items from the files the build wrote (fp32 safetensors and JSONL,
exact), so the experts' bytes are those of a build that trains them in turn.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from saemerge.bench.splits import load_split

log = logging.getLogger(__name__)

EXPERTS = ("math", "multilingual")
#: Added to ``10 * seed`` for the expert's batch order (the base takes ``+ 1``).
SEED_OFFSET = {"math": 2, "multilingual": 3}


def expert_pairs(name: str, items: list[dict]) -> tuple[list[str], list[str]]:
    """(prompts, completions) of expert ``name``'s training items."""
    from saemerge.bench.build import math_pairs, mc_pairs

    return math_pairs(items) if name == "math" else mc_pairs(items)


def expert_budget(spec, name: str) -> tuple[int, float]:
    """(steps, peak learning rate) of expert ``name`` in size ``spec``."""
    return (spec.math_steps, spec.math_lr) if name == "math" else (spec.ml_steps, spec.ml_lr)


def train_expert(
    base,
    tokenizer,
    name: str,
    items: list[dict],
    spec,
    seed: int,
    device: str = "cpu",
    *,
    steps: int | None = None,
    lr: float | None = None,
):
    """A copy of ``base`` fine-tuned as expert ``name`` on ``items`` (its task's training split).

    Args:
        spec: the bench size (batch, warm-up, budget, anchor, scale cycle).
        seed: the bench seed; the batch order is seeded by ``10 * seed + SEED_OFFSET[name]``.
        steps, lr: replace the size's budget (the tuning sweeps); default the size's.
    """
    from saemerge.bench.training import encode_pairs, train

    default_steps, default_lr = expert_budget(spec, name)
    model = copy.deepcopy(base)
    prompts, completions = expert_pairs(name, items)
    train(
        model,
        encode_pairs(tokenizer, prompts, completions, spec.max_len),
        steps=default_steps if steps is None else steps,
        lr=default_lr if lr is None else lr,
        seed=seed * 10 + SEED_OFFSET[name],
        desc=f"{name} expert",
        batch_size=spec.batch_size,
        warmup=spec.warmup_steps,
        pad_id=tokenizer.pad_token_id,
        device=device,
        weight_decay=0.0,
        # Decay towards the base, not towards 0: decay to 0 puts the same -θ_0 direction
        # into both task vectors, which task arithmetic then adds up.
        anchor_decay=spec.expert_anchor,
        scale_cycle=tuple(spec.expert_scale_cycle),
    )
    return model


def test_scores(model, tokenizer, tests: dict[str, list[dict]], batch_size: int) -> dict[str, float]:
    """Accuracy of ``model`` on both test sets, rounded as ``bench.json`` records it."""
    from saemerge.bench.reference_scorer import accuracy, score_math, score_mc

    return {
        "math": round(accuracy(score_math(model, tokenizer, tests["math"], batch_size=batch_size)), 4),
        "multilingual": round(accuracy(score_mc(model, tokenizer, tests["multilingual"], batch_size=batch_size)), 4),
    }


def train_experts_concurrently(
    out_dir: Path, size: str, overrides: dict | None, seed: int, base, tokenizer, items: dict, spec, phase
) -> dict[str, dict]:
    """Both experts at once: multilingual in a one-thread child process, math here (one thread).

    The base must already be saved under ``out_dir/models/base`` and the data under
    ``out_dir/data``. Each side saves its expert and scores it on the test sets.

    Returns:
        {name: test scores} of the base and both experts.
    """
    from saemerge.bench.checkpoints import save_checkpoint
    from saemerge.bench.numerics import pinned_env

    args = {"out_dir": str(out_dir), "size": size, "overrides": overrides, "seed": seed, "expert": "multilingual"}
    env = {**os.environ, **pinned_env(1)}
    scores_file = out_dir / ".multilingual-scores.json"
    args["scores_file"] = str(scores_file)
    log.info("bench build: the multilingual expert in a second process, the math expert here (1 thread each)")
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "saemerge.bench.experts", json.dumps(args)], env=env)
    try:
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with phase("math expert"):
                model = train_expert(base, tokenizer, "math", items["math"], spec, seed)
                save_checkpoint(
                    model, tokenizer, out_dir / "models" / "math", tokenizer_from=out_dir / "models" / "base"
                )
            tests = {t: load_split(out_dir / "data", t, "test") for t in EXPERTS}
            with phase("evaluate base and math"):
                scores = {
                    n: test_scores(m, tokenizer, tests, spec.eval_batch_size)
                    for n, m in (("base", base), ("math", model))
                }
        finally:
            torch.set_num_threads(prev)
        code = child.wait()
    except BaseException:
        child.kill()
        child.wait()
        raise
    if code != 0:
        raise RuntimeError(f"the multilingual expert's process failed (exit {code}); its error is above")
    phase.seconds["multilingual expert (second process, with its evaluation)"] = round(
        json.loads(scores_file.read_text())["seconds"], 2
    )
    phase.seconds["experts and evaluation (concurrent wall time)"] = round(time.perf_counter() - started, 2)
    scores["multilingual"] = json.loads(scores_file.read_text())["scores"]
    scores_file.unlink()
    return scores


def load_base(base_dir: Path, spec, tokenizer):
    """The base saved in ``base_dir``, built as the build builds it (:func:`~saemerge.bench.checkpoints.new_model`
    from the size's config) with the saved weights loaded: the same module as the one the build
    trained, so an expert trained from it has the same bytes."""
    from safetensors.torch import load_file

    from saemerge.bench.checkpoints import llama_config, new_model

    model = new_model(llama_config(spec, tokenizer), 0)
    model.load_state_dict(load_file(str(base_dir / "model.safetensors")), strict=True)
    return model.eval()


def _worker(argv: list[str]) -> int:
    """``python -m saemerge.bench.experts ARGS_JSON``: train, save and score one expert from a
    build directory's base, tokenizer and data (the second process of the concurrent build)."""
    import dataclasses

    from saemerge.bench.checkpoints import save_checkpoint
    from saemerge.bench.sizes import get_size
    from saemerge.bench.tokenizer import load_tokenizer

    args = json.loads(argv[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    out_dir, name, seed = Path(args["out_dir"]), args["expert"], args["seed"]
    spec = dataclasses.replace(get_size(args["size"]), **(args["overrides"] or {}))
    base_dir = out_dir / "models" / "base"
    tokenizer = load_tokenizer(base_dir)
    base = load_base(base_dir, spec, tokenizer)
    model = train_expert(base, tokenizer, name, load_split(out_dir / "data", name, "train"), spec, seed)
    save_checkpoint(model, tokenizer, out_dir / "models" / name, tokenizer_from=base_dir)
    tests = {t: load_split(out_dir / "data", t, "test") for t in EXPERTS}
    scores = test_scores(model, tokenizer, tests, spec.eval_batch_size)
    seconds = time.perf_counter() - started
    Path(args["scores_file"]).write_text(json.dumps({"scores": scores, "seconds": seconds}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
