"""The four shipped tasks score the same, example by example, before and after a change.

Scores the micro bench's base and experts on an optimisation set and a test subset of the tiny
benchmark's tasks, and (the same models) on samples of the real-format gsm8k_sae and
mmlu_prox_sae fixtures, and writes every per-example row (task, id, correct, answer, target)
with the sample files' sha256 to a JSON file. Run it with two checkouts' interpreters on the
same bench and compare the outputs::

    python benchmarks/shipped_tasks_unchanged.py --bench DIR --out new.json
    /work/main/.venv/bin/python benchmarks/shipped_tasks_unchanged.py --bench DIR --out old.json
    python benchmarks/shipped_tasks_unchanged.py --compare old.json new.json

Only APIs both sides have are used (sample_optimisation_set, draw_test_set, Evaluator(names)).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support


def _rows(result) -> list[list]:
    return [[r.task, r.example_id, bool(r.correct), r.answer, r.target] for r in result.per_example]


def score(bench: Path, out: Path, work: Path, max_gen_toks: int) -> None:
    import saemerge
    from saemerge.evaluate.evaluator import Evaluator
    from saemerge.evaluate.sampling import draw_test_set, sample_optimisation_set
    from tests.support.fixtures import write_real_data

    real = write_real_data(work / "real")
    samples = {}
    samples |= {
        f"opt:{k}": v
        for k, v in sample_optimisation_set(
            ["saebench_math", "saebench_multilingual"], 24, data=bench, seed=0, generation=0, out_dir=work / "opt"
        ).items()
    }
    samples |= {
        f"test:{k}": v
        for k, v in draw_test_set(
            ["saebench_math", "saebench_multilingual"], 40, data=bench, seed=0, out_dir=work / "test"
        ).items()
    }
    samples |= {
        f"real:{k}": v
        for k, v in draw_test_set(
            ["gsm8k_sae", "mmlu_prox_sae"], None, data=real, seed=0, out_dir=work / "real-test"
        ).items()
    }
    record = {"saemerge": saemerge.__file__, "files": {}, "rows": {}}
    for key, path in samples.items():
        record["files"][key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    models = {"base": bench / "models" / "base"} | {
        p.name: p for p in sorted((bench / "models").iterdir()) if p.name != "base" and p.is_dir()
    }
    start = time.perf_counter()
    for group in ("opt", "test", "real"):
        group_samples = {k.split(":", 1)[1]: v for k, v in samples.items() if k.startswith(group + ":")}
        with Evaluator(
            list(group_samples), device="cpu", dtype="float32", batch_size=8, max_gen_toks=max_gen_toks
        ) as ev:
            for name, model in models.items():
                record["rows"][f"{group}:{name}"] = _rows(ev.score(model, group_samples))
    record["seconds"] = time.perf_counter() - start
    out.write_text(json.dumps(record, indent=1, ensure_ascii=False))
    print(f"{out}: {sum(map(len, record['rows'].values()))} rows in {record['seconds']:.0f} s")


def compare(a: Path, b: Path) -> int:
    old, new = json.loads(a.read_text()), json.loads(b.read_text())
    bad = [k for k in old["files"] if old["files"][k] != new["files"].get(k)]
    for k in bad:
        print(f"sample {k}: files differ")
    n = 0
    for key, rows in old["rows"].items():
        other = new["rows"].get(key)
        if other != rows:
            diff = sum(x != y for x, y in zip(rows, other or []))
            print(f"{key}: {diff} of {len(rows)} rows differ")
            bad.append(key)
        n += len(rows)
    print(f"{len(old['rows'])} (sample, model) pairs, {n} rows: {'identical' if not bad else 'DIFFERENT'}")
    return 1 if bad else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, help="a built bench directory (saemerge bench build --size micro)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--work", type=Path, help="scratch directory (default: next to --out)")
    ap.add_argument("--max-gen-toks", type=int, default=48)
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"))
    args = ap.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    work = args.work or args.out.with_suffix(".work")
    score(args.bench, args.out, work, args.max_gen_toks)
