"""Evaluator throughput: examples per second for generation (math) and multiple choice.

    python benchmarks/eval_bench.py                       # temporary tiny LLaMA + hand-made data
    python benchmarks/eval_bench.py --bench .saemerge/bench --n 64 --batch-size 32

Prints, per device (CPU, and CUDA when present): the first checkpoint's load time, the time
to swap a second checkpoint's weights in, and examples/s on ``saebench_math``
(generate_until, up to ``--max-gen-toks`` tokens) and ``saebench_multilingual`` (one
loglikelihood request per option). Each task is timed on its own, after a warm-up call.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.support


def _models(bench: Path | None, tmp: Path) -> tuple[Path, Path, str]:
    if bench is not None:
        return bench / "models" / "base", bench / "models" / "math", f"bench {bench}"
    from tests.support.tinymodels import write_family

    fam = write_family(tmp / "family", n_experts=1, vocab_size=320, hidden=64, layers=2)
    return fam["base"], fam["expert0"], "tests.support.tinymodels LLaMA (hidden 64, 2 layers, vocab 320)"


def _data(bench: Path | None, tmp: Path, n: int) -> Path:
    if bench is not None:
        return bench
    from tests.support.fixtures import write_bench_data

    return write_bench_data(tmp / "bench", {"train": n, "validation": 0, "test": n})


def run(device: str, args: argparse.Namespace, tmp: Path) -> None:
    from saemerge.evaluate.evaluator import Evaluator
    from saemerge.evaluate.sampling import draw_test_set

    base, other, what = _models(args.bench, tmp)
    data = _data(args.bench, tmp, args.n)
    samples = draw_test_set(["saebench_math", "saebench_multilingual"], args.n, data=data, seed=0, out_dir=tmp / "s")
    print(f"\n== {device}: {what}; batch size {args.batch_size}, max_gen_toks {args.max_gen_toks}")
    with Evaluator(
        list(samples),
        device=device,
        batch_size=args.batch_size,
        max_gen_toks=args.max_gen_toks,
        workdir=tmp / f"work-{device}",
    ) as ev:
        t = time.perf_counter()
        ev.score(base, samples, limit=2)
        print(f"first load + 4 examples: {time.perf_counter() - t:6.2f} s")
        t = time.perf_counter()
        ev.score(other, samples, limit=1)
        print(f"weight swap + 2 examples: {time.perf_counter() - t:6.2f} s")
        for task in samples:
            best = 0.0
            for _ in range(args.repeats):
                res = ev.score(base, {task: samples[task]})
                best = max(best, res.stats["examples_per_s"])
            print(
                f"{task:<24} {res.stats['evaluated']:>5} examples  {best:8.1f} examples/s  "
                f"(accuracy {res.per_task[task]:.3f})"
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", type=Path, help="a built tiny benchmark (default: a temporary tiny model and data)")
    p.add_argument("--n", type=int, default=48, help="examples per task (default 48)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-gen-toks", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per task; the best is shown")
    p.add_argument("--device", action="append", help="cpu, cuda (default: cpu, and cuda when present)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA")
    )
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        for device in devices:
            run(device, args, Path(tmp))


if __name__ == "__main__":
    main()
