"""The plain bench's experts' tuning sweep: each (steps, learning rate) scored on its own
task's VALIDATION split only (never a test item).

The experts are fine-tuned as the ``plain`` size fine-tunes them (the tiny size's recipe with
``expert_anchor`` 0 and no ``expert_scale_cycle``), from the tiny bench's base, tokenizer and
data (a finished ``saemerge bench build --size tiny`` directory). Run it in a process started
with the build's pinned kernels and one thread (``OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2``) to get the weights a build gets::

    python experiments/plain-bench/sweep.py TINY_BENCH_DIR math 300:4e-4 600:1e-3 --save /tmp/sweep

Prints and appends one JSON line per config to ``--log``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from saemerge.bench.checkpoints import save_checkpoint
from saemerge.bench.experts import load_base, train_expert
from saemerge.bench.reference_scorer import accuracy, score_math, score_mc
from saemerge.bench.sizes import get_size
from saemerge.bench.splits import load_split
from saemerge.bench.tokenizer import load_tokenizer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bench", type=Path)
    p.add_argument("expert", choices=("math", "multilingual"))
    p.add_argument("configs", nargs="+", help="STEPS:LR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", type=Path, help="save each expert under SAVE/EXPERT-STEPS-LR")
    p.add_argument("--log", type=Path, default=Path("experiments/plain-bench/sweep.jsonl"))
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    spec = dataclasses.replace(get_size("tiny"), expert_anchor=0.0, expert_scale_cycle=())
    base_dir = args.bench / "models" / "base"
    tok = load_tokenizer(base_dir)
    base = load_base(base_dir, spec, tok)
    data = args.bench / "data"
    train_items = load_split(data, args.expert, "train")
    val = load_split(data, args.expert, "validation")
    for cfg in args.configs:
        steps, lr = int(cfg.split(":")[0]), float(cfg.split(":")[1])
        t0 = time.perf_counter()
        model = train_expert(base, tok, args.expert, train_items, spec, args.seed, steps=steps, lr=lr)
        train_s = time.perf_counter() - t0
        score = score_math if args.expert == "math" else score_mc
        acc = accuracy(score(model, tok, val, batch_size=spec.eval_batch_size))
        row = {
            "bench_seed": args.seed,
            "expert": args.expert,
            "steps": steps,
            "lr": lr,
            "anchor": 0.0,
            "scale_cycle": [],
            "validation_accuracy": round(acc, 4),
            "validation_items": len(val),
            "train_seconds": round(train_s, 1),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        }
        print(json.dumps(row), flush=True)
        with args.log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if args.save:
            save_checkpoint(model, tok, args.save / f"{args.expert}-{steps}-{lr:g}", tokenizer_from=base_dir)


if __name__ == "__main__":
    main()
