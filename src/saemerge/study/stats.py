"""Statistics over a study's per-example test scores (pure: numpy and the standard library, no I/O).

A study runs every method on a grid of bench seeds (which test and optimisation items a bench
draws) and run seeds (the search's randomness). Its score table has one row per scored test item:
``bench_seed``, ``run_seed``, ``method``, ``task``, ``example_id``, ``score`` (0/1 accuracy).

A *unit* is one evaluated model: one (bench seed, run seed) of a method. A *deterministic* method
(given a bench: weight_average, task_arithmetic, ties, rank_mean, base, experts) scores the same
in every run of a bench seed, so it is ONE unit per bench seed: the rows of its lowest run seed;
its other runs' rows are ignored (counting copies of one number would shrink its interval).

Accuracy of a unit on a task is the mean score over the task's items; *macro* is the mean of the
per-task accuracies (each task weighs the same, whatever its size).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

SCORE_COLUMNS = ("bench_seed", "run_seed", "method", "task", "example_id", "score")
MACRO = "macro"

# Bootstrap resampling draws multinomial counts over a unit's distinct score values (exact, and
# O(distinct values) per draw: 0/1 scores have at most 3 distinct paired differences); with more
# distinct values than this, gathering resampled item indices is faster.
_MULTINOMIAL_MAX_VALUES = 32
_CHUNK_ELEMENTS = 2_000_000  # bounds the (replicates × units × items) arrays of one bootstrap chunk

Unit = tuple[int, int]  # (bench_seed, run_seed)
TaskItems = dict[str, tuple[np.ndarray, np.ndarray]]  # task -> (example ids sorted, their scores)
# A pyarrow.Table, an iterable of row dicts (columns SCORE_COLUMNS), or a StudyScores.
ScoreTable = Any


@dataclass(frozen=True, eq=False)
class StudyScores:
    """A score table grouped as ``method -> unit -> task -> (example ids sorted, scores)``, with
    deterministic methods cut to one unit per bench seed (see ``load_scores``). The functions
    below take it in place of a table, so that a report parses its table once."""

    units: dict[str, dict[Unit, TaskItems]]
    deterministic: frozenset[str]


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` units with its interval; ``n == 1`` has ``low == high == mean`` (no spread)."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class RunScore:
    """One unit's test accuracy per task and its macro (mean over tasks)."""

    bench_seed: int
    run_seed: int
    method: str
    accuracy: Mapping[str, float]
    macro: float


@dataclass(frozen=True)
class PairedDiff:
    """``reference − other`` on one task (or ``"macro"``), over the units both were evaluated in.

    ``mean`` is the plain difference of accuracies averaged over units (bench seeds weighted
    equally); ``low``/``high`` the percentile interval of the hierarchical paired bootstrap at
    ``level``; ``wins``/``ties`` count units where the reference scored higher/the same.
    """

    reference: str
    other: str
    task: str
    mean: float
    low: float
    high: float
    wins: int
    ties: int
    n_units: int
    level: float


# ---------------------------------------------------------------------------------------------
# Reading the score table


def load_scores(table: Any, deterministic: Collection[str]) -> StudyScores:
    """Group a score table (a ``pyarrow.Table`` or an iterable of row dicts) by method and unit.

    Deterministic methods keep one unit per bench seed, their lowest run seed. Raises ValueError
    on missing columns or scores, an item scored twice in a unit, or a method whose units score
    different sets of tasks.
    """
    cols = _columns(table)
    codes = {c: np.unique(cols[c], return_inverse=True)[1].ravel() for c in SCORE_COLUMNS[:5]}
    order = np.lexsort(tuple(codes[c] for c in reversed(SCORE_COLUMNS[:5])))
    group = np.stack([codes[c][order] for c in SCORE_COLUMNS[:4]])
    starts = np.flatnonzero(np.r_[True, np.any(group[:, 1:] != group[:, :-1], axis=0)])
    out: dict[str, dict[Unit, TaskItems]] = {}
    for lo, hi in zip(starts, np.r_[starts[1:], order.size]):
        rows = order[lo:hi]
        first = rows[0]
        method, task = str(cols["method"][first]), str(cols["task"][first])
        unit = (int(cols["bench_seed"][first]), int(cols["run_seed"][first]))
        ids = cols["example_id"][rows]
        if ids.size > 1 and np.any(ids[1:] == ids[:-1]):
            raise ValueError(
                f"{method!r} scores an item of task {task!r} twice in bench seed {unit[0]}, run seed {unit[1]}"
            )
        out.setdefault(method, {}).setdefault(unit, {})[task] = (ids, cols["score"][rows])
    for method in set(deterministic) & out.keys():
        lowest: dict[int, int] = {}
        for bench, run in out[method]:
            lowest[bench] = min(lowest.get(bench, run), run)
        out[method] = {u: items for u, items in out[method].items() if lowest[u[0]] == u[1]}
    if np.any(cols["task"] == MACRO):
        raise ValueError(f"a task may not be named {MACRO!r}: the name stands for the mean over tasks")
    for method, units in out.items():
        task_sets = {tuple(sorted(items)) for items in units.values()}
        if len(task_sets) > 1:
            raise ValueError(f"{method!r}: its units score different task sets {sorted(task_sets)}")
    return StudyScores(out, frozenset(deterministic))


def _grouped(table: ScoreTable, deterministic: Collection[str] | None) -> dict[str, dict[Unit, TaskItems]]:
    """The grouped scores; ``deterministic=None`` takes a StudyScores as loaded (a table: none)."""
    if not isinstance(table, StudyScores):
        return load_scores(table, deterministic or ()).units
    if deterministic is not None and table.deterministic != frozenset(deterministic):
        raise ValueError(
            f"scores were loaded with deterministic={sorted(table.deterministic)}, not {sorted(deterministic)}"
        )
    return table.units


def _columns(table: Any) -> dict[str, np.ndarray]:
    if hasattr(table, "column_names"):  # a pyarrow.Table, read without importing pyarrow here
        missing = [c for c in SCORE_COLUMNS if c not in table.column_names]
        raw = {} if missing else {c: table.column(c).to_pylist() for c in SCORE_COLUMNS}
    else:
        rows = list(table)
        missing = sorted({c for r in rows for c in SCORE_COLUMNS if c not in r})
        raw = {} if missing else {c: [r[c] for r in rows] for c in SCORE_COLUMNS}
    if missing:
        raise ValueError(f"score table lacks columns {missing}; needs {list(SCORE_COLUMNS)}")
    if not raw["score"]:
        raise ValueError("score table has no rows")
    if any(v is None for v in raw["score"]):
        raise ValueError(f"score table has {sum(v is None for v in raw['score'])} missing scores")
    return {
        "bench_seed": np.asarray(raw["bench_seed"], dtype=np.int64),
        "run_seed": np.asarray(raw["run_seed"], dtype=np.int64),
        "method": np.asarray(raw["method"], dtype=str),
        "task": np.asarray(raw["task"], dtype=str),
        "example_id": np.asarray([str(v) for v in raw["example_id"]], dtype=str),
        "score": np.asarray(raw["score"], dtype=np.float64),
    }


# ---------------------------------------------------------------------------------------------
# Per-unit accuracy and Student-t intervals


def per_run_scores(table: ScoreTable, deterministic: Collection[str] | None = None) -> list[RunScore]:
    """Accuracy per task and macro of every unit (deterministic methods: one per bench seed, the
    lowest run seed's rows), sorted by method, bench seed, run seed. ``deterministic=None``: as
    ``table`` was loaded if it is a StudyScores, else no method is deterministic."""
    scores = _grouped(table, deterministic)
    return [
        _run_score(method, unit, scores[method][unit]) for method in sorted(scores) for unit in sorted(scores[method])
    ]


def _run_score(method: str, unit: Unit, items: TaskItems) -> RunScore:
    accuracy = {task: float(np.mean(s)) for task, (_, s) in sorted(items.items())}
    return RunScore(unit[0], unit[1], method, accuracy, float(np.mean(list(accuracy.values()))))


def mean_ci(values: Iterable[float], level: float = 0.95) -> Interval:
    """The mean of ``values`` with its Student-t interval at ``level`` (values taken as
    independent draws; n - 1 degrees of freedom). One value gives ``low == high == mean``."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, mean, mean, 1)
    half = t_quantile(0.5 + level / 2, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half, int(x.size))


def t_quantile(p: float, df: float) -> float:
    """The ``p``-quantile of Student's t with ``df`` degrees of freedom (bisection on the CDF,
    which is computed from the regularized incomplete beta function; error below 1e-9)."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        lo, hi = hi, 2 * hi
    while hi - lo > 1e-12 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1 - tail if t > 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) by its continued fraction (Numerical Recipes 6.4)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for step in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + step * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + step / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h


def summarize_methods(
    table: ScoreTable, deterministic: Collection[str], level: float = 0.95
) -> dict[str, dict[str, Interval]]:
    """``method -> task or "macro" -> Interval``: the mean test accuracy over the method's units
    with a Student-t interval. Units: every (bench seed, run seed) of a search method, one per
    bench seed of a deterministic method (so its ``n`` counts bench seeds). Units of one bench
    seed share its test items, so the interval treats them as more independent than they are;
    ``paired_difference`` accounts for that."""
    runs = per_run_scores(table, deterministic)
    out: dict[str, dict[str, Interval]] = {}
    for method in sorted({r.method for r in runs}):
        mine = [r for r in runs if r.method == method]
        out[method] = {task: mean_ci([r.accuracy[task] for r in mine], level) for task in mine[0].accuracy}
        out[method][MACRO] = mean_ci([r.macro for r in mine], level)
    return out


# ---------------------------------------------------------------------------------------------
# Paired differences: hierarchical paired bootstrap


def paired_difference(
    table: ScoreTable,
    reference: str,
    other: str,
    deterministic: Collection[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    paired: bool = True,
) -> dict[str, PairedDiff]:
    """``reference − other`` accuracy on the same test items, per task and ``"macro"``.

    Units: the (bench seed, run seed) pairs both methods were evaluated in; a deterministic
    method has one unit per bench seed, paired with every run of the other method in that bench
    seed (two deterministic methods: one unit per bench seed). Within a unit the two methods must
    have scored exactly the same items of each task, and the units of one bench seed the same
    items (the bench seed fixes the test set); otherwise ValueError.

    The point estimate is the plain difference of accuracies, averaged over the units of each
    bench seed and then over bench seeds (each bench seed weighs the same). The interval is the
    percentile interval of a hierarchical bootstrap: each replicate resamples the units of each
    bench seed with replacement (run seeds within bench seeds), then, inside every chosen unit,
    the items of each task with replacement, using the SAME items for both methods — which is what
    makes it paired: item difficulty, shared by both methods, cancels. It then computes the
    estimate as above. ``paired=False`` resamples the two methods' items independently instead;
    it exists to show what pairing buys, not for reporting.
    """
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got n_boot={n_boot}, level={level}")
    scores = _grouped(table, deterministic)
    strata = _paired_strata(scores, reference, other, set(deterministic))
    tasks = sorted(next(iter(scores[reference].values())))
    other_tasks = sorted(next(iter(scores[other].values())))
    if tasks != other_tasks:
        raise ValueError(f"{reference!r} scores tasks {tasks} but {other!r} scores {other_tasks}")
    matrices = {
        bench: _stratum_matrices(scores, reference, other, bench, pairs, tasks) for bench, pairs in strata.items()
    }

    # Per unit and task accuracy, for the point estimate and the win counts.
    acc_ref = {b: np.stack([r.mean(1) for r, _ in m], axis=1) for b, m in matrices.items()}  # (units, tasks)
    acc_oth = {b: np.stack([o.mean(1) for _, o in m], axis=1) for b, m in matrices.items()}
    estimate = np.mean([(acc_ref[b] - acc_oth[b]).mean(0) for b in matrices], axis=0)  # (tasks,)
    all_ref, all_oth = np.concatenate(list(acc_ref.values())), np.concatenate(list(acc_oth.values()))

    boot = _bootstrap(matrices, n_boot, np.random.default_rng(seed), paired)  # (n_boot, tasks)
    q = ((1 - level) / 2, (1 + level) / 2)
    out = {}
    for i, task in enumerate([*tasks, MACRO]):
        if task == MACRO:
            point, draws, ref_u, oth_u = float(estimate.mean()), boot.mean(1), all_ref.mean(1), all_oth.mean(1)
        else:
            point, draws, ref_u, oth_u = float(estimate[i]), boot[:, i], all_ref[:, i], all_oth[:, i]
        low, high = np.quantile(draws, q)
        tied = np.isclose(ref_u, oth_u, rtol=0, atol=1e-12)
        out[task] = PairedDiff(
            reference, other, task, point, float(low), float(high),
            wins=int(np.sum((ref_u > oth_u) & ~tied)), ties=int(tied.sum()), n_units=int(ref_u.size), level=level,
        )  # fmt: skip
    return out


def _paired_strata(
    scores: dict[str, dict[Unit, TaskItems]], reference: str, other: str, deterministic: set[str]
) -> dict[int, list[tuple[Unit, Unit]]]:
    """``bench seed -> [(reference unit, other unit)]``: the units the two methods share."""
    for name in (reference, other):
        if name not in scores:
            raise ValueError(f"no scores for method {name!r}; the table has {sorted(scores)}")
    ref, oth = scores[reference], scores[other]
    ref_bench = {u[0]: u for u in ref}  # for a deterministic method: its single unit per bench seed
    oth_bench = {u[0]: u for u in oth}
    ref_det, oth_det = reference in deterministic, other in deterministic
    if ref_det and oth_det:
        pairs = [(ref_bench[b], oth_bench[b]) for b in sorted(ref_bench) if b in oth_bench]
    elif oth_det:
        pairs = [(u, oth_bench[u[0]]) for u in sorted(ref) if u[0] in oth_bench]
    elif ref_det:
        pairs = [(ref_bench[u[0]], u) for u in sorted(oth) if u[0] in ref_bench]
    else:
        pairs = [(u, u) for u in sorted(ref) if u in oth]
    if not pairs:
        raise ValueError(
            f"{reference!r} (units {sorted(ref)}) and {other!r} (units {sorted(oth)}) share no (bench seed, run seed)"
        )
    strata: dict[int, list[tuple[Unit, Unit]]] = {}
    for pair in pairs:
        strata.setdefault(pair[0][0], []).append(pair)
    return strata


def _stratum_matrices(
    scores: dict[str, dict[Unit, TaskItems]],
    reference: str,
    other: str,
    bench: int,
    pairs: list[tuple[Unit, Unit]],
    tasks: list[str],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per task, the (units × items) score matrices of reference and other, items aligned."""
    out = []
    for task in tasks:
        ids0 = scores[reference][pairs[0][0]][task][0]
        ref_rows, oth_rows = [], []
        for ref_unit, oth_unit in pairs:
            ref_ids, ref_scores = scores[reference][ref_unit][task]
            oth_ids, oth_scores = scores[other][oth_unit][task]
            if not np.array_equal(ref_ids, oth_ids):
                only_ref, only_oth = np.setdiff1d(ref_ids, oth_ids), np.setdiff1d(oth_ids, ref_ids)
                raise ValueError(
                    f"task {task!r}, bench seed {bench}: the methods scored different test items: "
                    f"{only_ref.size} only for {reference!r} (run seed {ref_unit[1]}; e.g. {list(only_ref[:3])}), "
                    f"{only_oth.size} only for {other!r} (run seed {oth_unit[1]}; e.g. {list(only_oth[:3])})"
                )
            if not np.array_equal(ref_ids, ids0):
                raise ValueError(
                    f"task {task!r}, bench seed {bench}: run seeds {pairs[0][0][1]} and {ref_unit[1]} of "
                    f"{reference!r} scored different test items ({ids0.size} vs {ref_ids.size}); a bench seed fixes them"
                )
            ref_rows.append(ref_scores)
            oth_rows.append(oth_scores)
        out.append((np.stack(ref_rows), np.stack(oth_rows)))
    return out


def _bootstrap(
    matrices: dict[int, list[tuple[np.ndarray, np.ndarray]]], n_boot: int, rng: np.random.Generator, paired: bool
) -> np.ndarray:
    """``(n_boot, tasks)`` bootstrap replicates of the per-task difference (see paired_difference)."""
    n_tasks = len(next(iter(matrices.values())))
    boot = np.zeros((n_boot, n_tasks))
    for mats in matrices.values():
        n_units = mats[0][0].shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // (n_units * max(r.shape[1] for r, _ in mats)))
        for start in range(0, n_boot, chunk):
            size = min(chunk, n_boot - start)
            chosen = rng.integers(0, n_units, size=(size, n_units))  # the units, the same for every task
            for t, (ref, oth) in enumerate(mats):
                if paired:
                    diff = _resampled_means(rng, ref - oth, chosen)
                else:
                    diff = _resampled_means(rng, ref, chosen) - _resampled_means(rng, oth, chosen)
                boot[start : start + size, t] += diff.mean(1)
    return boot / len(matrices)


def _resampled_means(rng: np.random.Generator, values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """For every cell of ``chosen`` (replicates × slots, each a row of ``values``), the mean of
    that row's items resampled with replacement, independently per cell."""
    n = values.shape[1]
    distinct, inverse = np.unique(values.ravel(), return_inverse=True)
    if distinct.size <= _MULTINOMIAL_MAX_VALUES:
        # How often each distinct value is drawn is multinomial: same distribution, far fewer draws.
        inverse = inverse.reshape(values.shape)
        probs = np.stack([np.bincount(row, minlength=distinct.size) for row in inverse]) / n
        return rng.multinomial(n, probs[chosen]) @ distinct / n
    idx = rng.integers(0, n, size=(*chosen.shape, n))
    return values.ravel()[chosen[..., None] * n + idx].mean(-1)
