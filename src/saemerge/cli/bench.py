"""``saemerge bench ...``: build the tiny benchmark and score checkpoints on it.

saemerge bench build --out DIR [--size micro|tiny|plain|small] [--seed N] [--force] [--device cpu] [--base-from DIR]
saemerge bench score --model DIR --data DIR [--split test] [--limit N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="the tiny benchmark: synthetic GSM8K/MMLU-ProX-style data, base + experts")
    verbs = p.add_subparsers(dest="bench_verb", metavar="VERB", required=True)

    b = verbs.add_parser("build", help="build data, tokenizer, base and experts into a directory")
    b.add_argument("--out", required=True, type=Path, help="output directory (must be empty unless --force)")
    b.add_argument(
        "--size",
        default="tiny",
        help="micro (seconds), tiny (minutes on a laptop CPU, default), plain (tiny's base, plainly fine-tuned "
        "experts: where one-shot merges fail), small",
    )
    b.add_argument("--seed", type=int, default=0, help="seed for data, initialisation and batch order (default 0)")
    b.add_argument("--force", action="store_true", help="replace an earlier build's outputs in --out")
    b.add_argument("--device", default="cpu", help="torch device for training and scoring (default cpu)")
    b.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 or 2, as many cores as are idle; 1 and 2 give the same bytes, "
        "more may not; on a busy machine 2 threads ran 1.2-3.5x slower)",
    )
    b.add_argument(
        "--base-from",
        type=Path,
        default=None,
        help="copy data, tokenizer and base from this finished build (same seed, same data and base settings) "
        "instead of pre-training; default for plain: a finished tiny-seedN build beside --out",
    )
    b.set_defaults(func=_build)

    s = verbs.add_parser(
        "score", help="in-process accuracy of a checkpoint on a bench's data (cross-check for lm-eval)"
    )
    s.add_argument("--model", required=True, type=Path, help="HF checkpoint directory with tokenizer")
    s.add_argument("--data", required=True, type=Path, help="the bench's data/ directory")
    s.add_argument("--split", default="test", choices=("train", "validation", "test"))
    s.add_argument("--limit", type=int, default=None, help="score only the first N items per task")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=_score)


def _build(args: argparse.Namespace) -> int:
    from saemerge.bench.build import build_bench

    bench = build_bench(
        args.out,
        args.size,
        args.seed,
        force=args.force,
        device=args.device,
        threads=args.threads,
        base_from=args.base_from,
    )
    print(format_summary(bench))
    print(f"wrote {args.out}")
    return 0


def format_summary(bench: dict) -> str:
    """Phase timings and the accuracy table of a ``bench.json`` dict, as printed by ``bench build``."""
    lines = [f"bench {bench['size']} seed {bench['seed']}: built in {bench['build_seconds']:.1f} s"]
    lines += [f"  {name:<20} {sec:7.1f} s" for name, sec in bench["phase_seconds"].items()]
    lines.append(f"  {'model':<14} {'math':>8} {'multilingual':>13}")
    for name, acc in bench["models"].items():
        lines.append(f"  {name:<14} {acc['math']:8.3f} {acc['multilingual']:13.3f}")
    return "\n".join(lines)


def _score(args: argparse.Namespace) -> int:
    from saemerge.bench.reference_scorer import evaluate_checkpoint
    from saemerge.errors import SaeMergeError

    if args.limit is not None and args.limit < 1:
        raise SaeMergeError(f"--limit {args.limit}: must be >= 1")
    acc = evaluate_checkpoint(args.model, args.data, split=args.split, limit=args.limit, device=args.device)
    print(json.dumps(acc))
    return 0
