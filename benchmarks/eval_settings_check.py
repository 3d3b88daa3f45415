"""Do evaluation settings change answers? Per-example answers of the bench's models under several
(batch size, torch threads) settings, on the same docs, against the first setting, with the time each took.

    python benchmarks/eval_settings_check.py --bench .saemerge/bench/tiny-seed0 --n 200 \\
        --setting 16,1 --setting 64,1 --setting 16,2 --setting 64,2

Each setting runs in its own process (torch's thread count is fixed once set). Prints, per
setting: seconds, examples/s, and how many (model, example) answers differ from the first
setting's. A setting that changes no answer can be used without changing results.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("base", "math", "multilingual")


def child(bench: Path, n: int, batch: int, threads: int, out: Path) -> None:
    import torch

    torch.set_num_threads(threads)
    from saemerge.evaluate.evaluator import Evaluator
    from saemerge.evaluate.sampling import draw_test_set

    tmp = Path(tempfile.mkdtemp(prefix="evalcheck-"))
    samples = draw_test_set(["saebench_math", "saebench_multilingual"], n, data=bench, seed=0, out_dir=tmp / "s")
    answers, seconds = {}, 0.0
    with Evaluator(list(samples), device="cpu", batch_size=batch, workdir=tmp / "w") as ev:
        ev.score(bench / "models" / "base", samples, limit=4)  # warm-up: model load, task build
        for m in MODELS:
            t = time.perf_counter()
            result = ev.score(bench / "models" / m, samples)
            seconds += time.perf_counter() - t
            answers.update({f"{m}|{r.task}|{r.example_id}": [r.answer, r.correct] for r in result.per_example})
    out.write_text(json.dumps({"seconds": seconds, "answers": answers}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bench", type=Path, required=True)
    p.add_argument("--n", type=int, default=200, help="test docs per task")
    p.add_argument("--setting", action="append", help="BATCH,THREADS (repeatable; the first is the reference)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        batch, threads, out = int(args.child[1]), int(args.child[2]), Path(args.child[3])
        child(args.bench, args.n, batch, threads, out)
        return
    settings = args.setting or ["16,1", "64,1"]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}")
    ref = None
    with tempfile.TemporaryDirectory() as tmp:
        for s in settings:
            batch, threads = (int(x) for x in s.split(","))
            out = Path(tmp) / f"{batch}-{threads}.json"
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), SAEMERGE_EVAL_THREADS=str(threads))
            cmd = [sys.executable, __file__, "--bench", str(args.bench), "--n", str(args.n)]
            subprocess.run([*cmd, "--child", "x", str(batch), str(threads), str(out)], check=True, env=env)
            got = json.loads(out.read_text())
            ref = ref or got
            diff = sum(ref["answers"][k] != v for k, v in got["answers"].items())
            acc = sum(v[1] for v in got["answers"].values()) / len(got["answers"])
            print(
                f"batch {batch:3d} threads {threads}: {got['seconds']:6.1f} s, "
                f"{len(got['answers']) / got['seconds']:6.1f} ex/s, mean accuracy {acc:.4f}, "
                f"{diff} of {len(got['answers'])} answers differ from the first setting"
            )


if __name__ == "__main__":
    main()
