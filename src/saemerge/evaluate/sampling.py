"""Drawing the per-generation optimisation sets and the held-out test subsets.

Each function writes one JSONL file per task (the docs lm-eval will score, with their
few-shot examples attached) and returns ``{task: path}``, ready for
:meth:`saemerge.evaluate.evaluator.Evaluator.score`. The files are the record of what a generation
was scored on.

- Optimisation sets draw only from a task's ``pool_splits`` (train/validation), seeded by
  the run seed, the generation and the task name, so generations see different examples
  and a re-run sees the same ones.
- Test subsets draw from ``test``; with a ``stratify`` field (the language) each stratum
  gets its proportional share, rounded by largest remainder (the paper's 1,000 MMLU-ProX
  test items "preserve the original language distribution").
- Few-shot examples depend only on the run seed and the doc's id, never on the
  generation, so an example's prompt (and so its cached score) is the same whenever it is
  drawn again; a doc is never its own shot.
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from saemerge.errors import SaeMergeError
from saemerge.evaluate.taskfns import SHOTS_FIELD
from saemerge.evaluate.taskset import TaskSet, parse_tasks
from saemerge.evaluate.taskspec import TaskSpec, load_split, resolve_data_root, write_jsonl

log = logging.getLogger(__name__)


def _sizes_for(specs: list[TaskSpec], sizes: Mapping[str, int | None] | int | None) -> dict[str, int | None]:
    if sizes is None or isinstance(sizes, int):
        return {s.name: sizes for s in specs}
    unknown = set(sizes) - {s.name for s in specs}
    if unknown:
        raise SaeMergeError(f"sizes: task(s) {', '.join(sorted(unknown))} are not among the tasks sampled")
    return {s.name: sizes.get(s.name) for s in specs}


def _check_size(spec: TaskSpec, size: int, available: int, where: str) -> None:
    if size < 1:
        raise SaeMergeError(f"sizes: {spec.name} asks for {size} examples; need at least 1")
    if size > available:
        raise SaeMergeError(f"sizes: {spec.name} asks for {size} examples but {where} holds {available}")


def proportional_allocation(counts: Mapping[str, int], n: int) -> dict[str, int]:
    """Split ``n`` over strata in proportion to ``counts`` (largest-remainder rounding).

    Ties in the remainder go to the larger stratum, then to the name that sorts first, so
    the result is deterministic. The shares sum to ``n`` and none exceeds its count.

    >>> proportional_allocation({"en": 50, "de": 30, "sw": 20}, 7)
    {'de': 2, 'en': 4, 'sw': 1}
    """
    total = sum(counts.values())
    if not 0 <= n <= total:
        raise ValueError(f"cannot draw {n} from {total}")
    quotas = {k: n * c / total for k, c in counts.items()}
    shares = {k: math.floor(q) for k, q in quotas.items()}
    left = n - sum(shares.values())
    order = sorted(counts, key=lambda k: (-(quotas[k] - shares[k]), -counts[k], k))
    for k in order[:left]:
        shares[k] += 1
    return dict(sorted(shares.items()))


def _attach_shots(spec: TaskSpec, docs: list[dict], data_root: Path, n: int, seed: int) -> list[dict]:
    if n <= 0:
        return docs
    pool = load_split(spec, data_root, spec.shot_split) if spec.shot_split else None
    if not pool:
        raise SaeMergeError(
            f"{data_root / spec.data}: task {spec.name} needs {spec.shot_split}.jsonl for its few-shot examples"
        )

    def key(doc: dict) -> tuple:
        return tuple(doc.get(f) for f in spec.shot_match)

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for p in pool:
        groups[key(p)].append({k: v for k, v in p.items() if k != SHOTS_FIELD})
    short = 0
    out = []
    for doc in docs:
        candidates = groups.get(key(doc), [])
        if spec.shot_order == "first":
            shots = [p for p in candidates if p["id"] != doc["id"]][:n]
        else:
            rng = random.Random(f"saemerge-shots:{seed}:{spec.name}:{doc['id']}")
            picks = rng.sample(range(len(candidates)), min(n + 1, len(candidates)))
            shots = [candidates[i] for i in picks if candidates[i]["id"] != doc["id"]][:n]
        short += len(shots) < n
        out.append({**doc, SHOTS_FIELD: shots})
    if short:
        log.warning("%s: %d of %d docs have fewer than %d few-shot examples", spec.name, short, len(docs), n)
    return out


def _write(
    spec: TaskSpec, docs: list[dict], out_dir: str | Path, data_root: Path, shots: int | None, seed: int, suffix: str
) -> Path:
    docs = _attach_shots(spec, docs, data_root, spec.shots if shots is None else shots, seed)
    path = write_jsonl(Path(out_dir) / f"{spec.name}{suffix}.jsonl", docs)
    log.info("%s: %d examples -> %s", spec.name, len(docs), path)
    return path


def sample_optimisation_set(
    tasks: Iterable[str | TaskSpec] | str | TaskSet,
    sizes: Mapping[str, int] | int,
    *,
    data: str | Path,
    seed: int,
    generation: int,
    out_dir: str | Path,
    shots: int | None = None,
    splits: Iterable[str] | None = None,
) -> dict[str, Path]:
    """Draw one generation's optimisation set from the train/validation splits.

    Args:
        tasks: the run's task set, specs, or names (shipped or installed; :mod:`~saemerge.evaluate.taskset`).
        sizes: examples per task (a mapping, or one number for all).
        data: the data root (or a tiny-benchmark directory holding ``data/``).
        seed: the run seed.
        generation: the generation index; with ``seed`` it seeds the draw.
        out_dir: where ``<task>.jsonl`` files are written.
        shots: few-shot examples per doc; default the task's (0 for the tiny benchmark).
        splits: draw only from these of the task's pool splits (the run parameter
            ``opt_splits``); default all of them (train and validation).

    Returns:
        ``{task: path to the JSONL sample}``.
    """
    wanted = None if splits is None else tuple(splits)
    specs = parse_tasks(tasks)
    root = resolve_data_root(data, [s.data for s in specs])
    out = {}
    for spec in specs:
        size = _sizes_for(specs, sizes)[spec.name]
        if size is None:
            raise SaeMergeError(f"sizes: no optimisation-set size given for {spec.name}")
        names = [s for s in spec.pool_splits if wanted is None or s in wanted]
        pool = []
        for split in names:
            pool += load_split(spec, root, split) or []
        if not pool:
            raise SaeMergeError(
                f"{root / spec.data}: task {spec.name} has none of {', '.join(s + '.jsonl' for s in names) or 'its pool splits'}"
                + ("" if wanted is None else f" (opt_splits {','.join(wanted)})")
            )
        _check_size(spec, size, len(pool), f"{'+'.join(names)} ({root / spec.data})")
        rng = random.Random(f"saemerge-opt:{seed}:{generation}:{spec.name}")
        picked = sorted(rng.sample(range(len(pool)), size))
        out[spec.name] = _write(spec, [pool[i] for i in picked], out_dir, root, shots, seed, "")
    return out


def draw_test_set(
    tasks: Iterable[str | TaskSpec] | str | TaskSet,
    sizes: Mapping[str, int | None] | int | None = None,
    *,
    data: str | Path,
    seed: int,
    out_dir: str | Path,
    shots: int | None = None,
) -> dict[str, Path]:
    """Write each task's held-out test set, or a subset of it.

    Args:
        sizes: examples per task; None (or a size at least the test set's) keeps it whole.
            A task with a ``stratify`` field is subsampled per stratum in proportion to
            the stratum's share of the test set.
        seed: seeds the subsample (the run seed).
        Other arguments as for :func:`sample_optimisation_set`.

    Returns:
        ``{task: path to the JSONL sample}`` (files named ``<task>.test.jsonl``).
    """
    specs = parse_tasks(tasks)
    root = resolve_data_root(data, [s.data for s in specs])
    out = {}
    for spec in specs:
        rows = load_split(spec, root, "test")
        if rows is None:
            raise SaeMergeError(f"{root / spec.data}: task {spec.name} has no test.jsonl")
        size = _sizes_for(specs, sizes)[spec.name]
        if size is not None and size < len(rows):
            _check_size(spec, size, len(rows), "the test split")
            rng = random.Random(f"saemerge-test:{seed}:{spec.name}")
            if spec.stratify:
                strata: dict[str, list[int]] = defaultdict(list)
                for i, row in enumerate(rows):
                    strata[str(row.get(spec.stratify))].append(i)
                shares = proportional_allocation({k: len(v) for k, v in strata.items()}, size)
                keep = [i for k in sorted(strata) for i in rng.sample(strata[k], shares[k])]
            else:
                keep = rng.sample(range(len(rows)), size)
            rows = [rows[i] for i in sorted(keep)]
        out[spec.name] = _write(spec, rows, out_dir, root, shots, seed, ".test")
    return out
