"""The one-shot merges of a bench's experts, scored on its test sets with 95 % intervals.

Merges with the pipeline's own operations and parameters (``saemerge.config.BASELINES``: weight
average, TIES density 0.2, DARE-TIES drop 0.8, RankMean; task arithmetic with α chosen from
``TA_ALPHAS`` on run seed S's generation-0 optimisation sample, 48 + 48 items from train +
validation, as ``steps.final.choose_task_arithmetic`` does), and scores them, the experts and the
base with the bench's in-process reference scorer (the build's scorer, a cross-check of lm-eval)
on the whole test splits. Intervals: percentile bootstrap, 2,000 replicates, over math problems
and over multilingual clusters (the 6 phrasings of one fact x language are one cluster); the
paired difference to the better expert resamples the same items for both models::

    python experiments/plain-bench/oneshot.py BENCH_DIR --out experiments/plain-bench/oneshot-b0.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from saemerge.bench.checkpoints import load_model
from saemerge.bench.reference_scorer import score_math, score_mc
from saemerge.bench.splits import load_split, read_jsonl
from saemerge.bench.tokenizer import load_tokenizer
from saemerge.config import BASELINES, TA_ALPHAS
from saemerge.evaluate.sampling import sample_optimisation_set
from saemerge.ops import merge_checkpoints

TASKS = ("math", "multilingual")
LM_TASKS = {"math": "saebench_math", "multilingual": "saebench_multilingual"}


def correct(model_dir: Path, items: dict[str, list[dict]]) -> dict[str, np.ndarray]:
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    return {
        "math": np.array([r["correct"] for r in score_math(model, tok, items["math"])], dtype=float),
        "multilingual": np.array([r["correct"] for r in score_mc(model, tok, items["multilingual"])], dtype=float),
    }


def boot_index(groups: np.ndarray, rng: np.random.Generator, n_boot: int) -> list[np.ndarray]:
    """Item indices of each replicate, resampling the groups (clusters) with replacement."""
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    return [np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))]) for _ in range(n_boot)]


def interval(per_task: dict[str, np.ndarray], idx: dict[str, list[np.ndarray]]) -> dict:
    out = {}
    for t in TASKS:
        draws = [per_task[t][i].mean() for i in idx[t]]
        out[t] = [float(per_task[t].mean()), *map(float, np.quantile(draws, (0.025, 0.975)))]
    macro_draws = [np.mean([per_task[t][idx[t][b]].mean() for t in TASKS]) for b in range(len(idx["math"]))]
    out["macro"] = [
        float(np.mean([per_task[t].mean() for t in TASKS])),
        *map(float, np.quantile(macro_draws, (0.025, 0.975))),
    ]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("bench", type=Path)
    p.add_argument("--run-seed", type=int, default=0, help="the run seed whose generation-0 sample picks α")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=None, help="where the merged checkpoints go (default a temp dir)")
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    models_dir, data = args.bench / "models", args.bench / "data"
    experts = [models_dir / "math", models_dir / "multilingual"]
    work = args.work or Path(tempfile.mkdtemp(prefix="i32-oneshot-"))
    tests = {t: load_split(data, t, "test") for t in TASKS}
    groups = {t: np.array([x.get("cluster", x["id"]) for x in tests[t]]) for t in TASKS}
    rng = np.random.default_rng(0)
    idx = {t: boot_index(groups[t], rng, 2000) for t in TASKS}

    # task arithmetic's α on the run's generation-0 optimisation sample (48 + 48, train + validation)
    sample_dir = work / "sample"
    sample_optimisation_set(
        list(LM_TASKS.values()), 48, data=args.bench, seed=args.run_seed, generation=0, out_dir=sample_dir
    )
    sample = {t: read_jsonl(sample_dir / f"{LM_TASKS[t]}.jsonl") for t in TASKS}
    ta_scores = {}
    for a in TA_ALPHAS:
        out = work / f"ta-{a:g}"
        if not (out / "config.json").exists():
            merge_checkpoints("task_arithmetic", experts, out, base=models_dir / "base", seed=args.run_seed, alpha=a)
        c = correct(out, sample)
        ta_scores[a] = float(np.mean([c[t].mean() for t in TASKS]))
    alpha = max(TA_ALPHAS, key=lambda a: (ta_scores[a], -a))

    rows: dict[str, dict] = {}
    per_item: dict[str, dict[str, np.ndarray]] = {}
    for name in ("base", "math", "multilingual"):
        per_item[f"expert:{name}" if name != "base" else "base"] = correct(models_dir / name, tests)
    for name in ("weight_average", "task_arithmetic", "ties", "dare_ties", "rankmean"):
        method, params = BASELINES[name]
        params = dict(params, alpha=alpha) if name == "task_arithmetic" else dict(params)
        out = work / name
        if not (out / "config.json").exists():
            merge_checkpoints(method, experts, out, base=models_dir / "base", seed=args.run_seed, **params)
        per_item[name] = correct(out, tests)
    for name, c in per_item.items():
        rows[name] = interval(c, idx)
    # the better expert on macro, and every merge's paired difference to it
    best = max(("expert:math", "expert:multilingual"), key=lambda m: rows[m]["macro"][0])
    diffs = {}
    for name in per_item:
        d = {t: per_item[name][t] - per_item[best][t] for t in TASKS}
        diffs[name] = interval(d, idx)
    result = {
        "bench": str(args.bench),
        "bench_json": json.loads((args.bench / "bench.json").read_text()).get("config", {}).get("name"),
        "run_seed_for_alpha": args.run_seed,
        "task_arithmetic_alpha": alpha,
        "task_arithmetic_sample_macro": ta_scores,
        "test_items": {t: len(tests[t]) for t in TASKS},
        "accuracy": rows,
        "better_expert": best,
        "minus_better_expert": diffs,
        "seconds": round(time.perf_counter() - start, 1),
        "loadavg_end": Path("/proc/loadavg").read_text().split()[:3],
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"α = {alpha} (sample macro {ta_scores}); better expert {best}")
    print(f"{'model':<22} {'math':>22} {'multilingual':>22} {'macro':>22}   macro - {best}")
    for name, r in rows.items():
        cells = " ".join(f"{r[t][0]:.3f} [{r[t][1]:.3f},{r[t][2]:.3f}]" for t in (*TASKS, "macro"))
        d = diffs[name]["macro"]
        print(f"{name:<22} {cells}   {d[0]:+.3f} [{d[1]:+.3f},{d[2]:+.3f}]")


if __name__ == "__main__":
    main()
