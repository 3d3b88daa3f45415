"""Paired contrasts of the optset study beyond its report's reference (sae-48 − X).

The study report compares every method with one reference. The reading in README.md also needs
the contrasts that hold one factor fixed: pruning (SAE against dense evolution at the same pool
and size), the pool (train + validation against validation only, same search and size), and the
sample size (48 against 200, same search and pool). Each is the report's own statistic
(:func:`saemerge.study.stats.paired_difference`: reference − other on the same test items,
hierarchical paired bootstrap over run seeds, then items), on the same collected scores.

    python experiments/optset-tiny/contrasts.py --workdir .saemerge/optset > experiments/optset-tiny/contrasts.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from saemerge.cli.pipeline import local_store_if_needed
from saemerge.study.collect import collect, is_deterministic
from saemerge.study.runner import StudyLayout, StudyRecord
from saemerge.study.stats import paired_difference

CONTRASTS = [
    ("sae-48", "dense-48", "pruning, train + validation, 48"),
    ("sae-200", "dense-200", "pruning, train + validation, 200"),
    ("sae-val-48", "dense-val-48", "pruning, validation only, 48"),
    ("sae-val-48", "sae-48", "pool, SAE, 48"),
    ("dense-val-48", "dense-48", "pool, dense, 48"),
    ("sae-200", "sae-48", "sample size, SAE, train + validation"),
    ("dense-200", "dense-48", "sample size, dense, train + validation"),
    ("dense-48", "weight_average", "dense evolution against the weight average"),
    ("dense-val-48", "weight_average", "dense evolution (validation) against the weight average"),
    ("sae-val-48", "weight_average", "SAE (validation) against the weight average"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=".saemerge/optset", help="the study's --workdir (its embedded store)")
    ap.add_argument("--bucket", default="saemerge")
    ap.add_argument("--study", default="optset")
    args = ap.parse_args()
    with local_store_if_needed(f"s3://{args.bucket}/studies", Path(args.workdir) / "store"):
        record = StudyRecord.open(StudyLayout(args.bucket, args.study))
        scores, runs, _ = collect(record)
    deterministic = {r["method"] for r in runs if is_deterministic(r["method"])}
    print("| contrast (A − B) | held fixed / varied | math | multilingual | macro | A wins |")
    print("|---|---|---|---|---|---|")
    for a, b, what in CONTRASTS:
        d = paired_difference(scores, a, b, deterministic)
        cell = {t: f"{x.mean:+.3f} [{x.low:+.3f}, {x.high:+.3f}]" for t, x in d.items()}
        tasks = [t for t in d if t != "macro"]
        wins = f"{d['macro'].wins}/{d['macro'].n_units}"
        print(f"| {a} − {b} | {what} | {cell[tasks[0]]} | {cell[tasks[1]]} | {cell['macro']} | {wins} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
