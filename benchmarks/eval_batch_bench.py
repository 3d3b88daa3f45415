"""Evaluation throughput by batch size: examples per second on generation (saebench_math) and
multiple choice (saebench_multilingual), for each batch size and for the default rule (batch 0:
16 on the CPU, on CUDA saemerge.evaluate.device.cuda_batch_size of the model and GPU memory).

    # on a CUDA machine: the bench and a real 135M model (a local HF directory, safetensors)
    python benchmarks/eval_batch_bench.py --bench .saemerge/bench/tiny-seed0 \\
        --model /models/SmolLM-135M --device cuda --batches 16,64,128,256,512,0 --n 256
    # a small CPU try of the script itself
    python benchmarks/eval_batch_bench.py --device cpu --batches 8,16,0 --n 16

Nothing is downloaded: --model must be a local checkpoint directory (config.json, tokenizer,
*.safetensors) and the data is the bench's (--bench) or a hand-made set. Each row: the
model, the batch asked for and the batch used, examples/s per task (after a warm-up call on
the same samples) and, on CUDA, the peak GPU memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.support

TASKS = ["saebench_math", "saebench_multilingual"]


def _models(args: argparse.Namespace, tmp: Path) -> list[tuple[str, Path]]:
    found = []
    if args.bench is not None:
        found.append((f"bench {args.bench.name} base", args.bench / "models" / "base"))
    if args.model is not None:
        found.append((args.model.name, args.model))
    if not found:
        from tests.support.tinymodels import write_family

        fam = write_family(tmp / "family", n_experts=1, vocab_size=320, hidden=64, layers=2)
        found.append(("tiny LLaMA (hidden 64, 2 layers)", fam["base"]))
    return found


def _samples(args: argparse.Namespace, tmp: Path) -> dict:
    from saemerge.evaluate.sampling import draw_test_set

    data = args.bench
    if data is None:
        from tests.support.fixtures import write_bench_data

        data = write_bench_data(tmp / "data", {"train": args.n, "validation": 0, "test": args.n})
    return draw_test_set(TASKS, args.n, data=data, seed=0, out_dir=tmp / "samples")


def _one_task(samples: dict, task: str) -> dict:
    return {task: samples[task]}


def run(args: argparse.Namespace, tmp: Path) -> None:
    import torch

    from saemerge.checkpoint import CheckpointReader
    from saemerge.evaluate.evaluator import Evaluator
    from saemerge.evaluate.hf import _torch_dtype, batch_size_for

    samples = _samples(args, tmp)
    cuda = args.device.startswith("cuda")
    print(f"device {args.device}; {args.n} examples a task; max_gen_toks {args.max_gen_toks}")
    print(f"{'model':<36} {'batch':>5} {'used':>5} {'math ex/s':>10} {'mc ex/s':>9} {'peak GiB':>9}")
    for label, model in _models(args, tmp):
        reader = CheckpointReader(model)
        dtype = _torch_dtype(args.dtype, reader, args.device)
        for batch in args.batches:
            used = batch_size_for(batch, args.device, reader, dtype)
            rates = []
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with Evaluator(
                TASKS,
                device=args.device,
                dtype=args.dtype,
                batch_size=batch,
                max_gen_toks=args.max_gen_toks,
                workdir=tmp / f"work-{batch}",
            ) as ev:
                for task in TASKS:
                    one = _one_task(samples, task)
                    ev.score(model, one)  # warm-up: load, compile kernels, fill the allocator
                    t = time.perf_counter()
                    res = ev.score(model, one)
                    rates.append(len(res.per_example) / (time.perf_counter() - t))
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
            print(
                f"{label[:36]:<36} {batch:>5} {used!s:>5} {rates[0]:>10.1f} {rates[1]:>9.1f} {peak:>9.2f}", flush=True
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, help="a built bench directory (models/, data)")
    p.add_argument("--model", type=Path, help="a local HF checkpoint directory, e.g. a 135M model")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    p.add_argument("--dtype", default="auto", help="eval_dtype (default auto: bf16 on a GPU that has it)")
    p.add_argument(
        "--batches",
        default="16,64,128,256,512,0",
        type=lambda s: [int(x) for x in s.split(",")],
        help="batch sizes, comma-separated; 0 is the default rule (default 16,64,128,256,512,0)",
    )
    p.add_argument("--n", type=int, default=256, help="examples a task (default 256)")
    p.add_argument("--max-gen-toks", type=int, default=256)
    args = p.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            sys.exit(f"--device {args.device}: CUDA is not usable here; give --device cpu for a small try")
    with tempfile.TemporaryDirectory(prefix="saemerge-batch-bench-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
