"""Study statistics on hand-made score tables: Student-t intervals, deterministic methods counted
once per bench seed, and the hierarchical paired bootstrap (finds a known difference, covers a
null one, is narrower than an unpaired one when the methods agree on most items)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from saemerge.study import stats
from saemerge.study.stats import (
    load_scores,
    mean_ci,
    paired_difference,
    per_run_scores,
    summarize_methods,
    t_quantile,
)

TASKS = ("math", "code")
N_ITEMS = 1000


def rows_for(method: str, bench: int, run: int, scores: dict[str, np.ndarray]) -> list[dict]:
    return [
        {
            "bench_seed": bench,
            "run_seed": run,
            "method": method,
            "task": task,
            "example_id": f"{task}-{i}",
            "score": float(s),
        }
        for task, values in scores.items()
        for i, s in enumerate(values)
    ]


def draw(rng: np.random.Generator, p: float) -> dict[str, np.ndarray]:
    return {task: (rng.random(N_ITEMS) < p).astype(float) for task in TASKS}


def grid(rng, accuracy: dict[str, float], benches=(0, 1), runs=range(5)) -> list[dict]:
    """Independent 0/1 scores per method, unit and item with the given accuracy."""
    return [
        row
        for bench in benches
        for run in runs
        for method, p in accuracy.items()
        for row in rows_for(method, bench, run, draw(rng, p))
    ]


def test_t_quantile_matches_the_t_table():
    table = {1: 12.7062, 2: 4.3027, 4: 2.7764, 9: 2.2622, 29: 2.0452, 30: 2.0423, 120: 1.9799, 10**6: 1.9600}
    for df, expected in table.items():
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3)
    assert t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=1e-3)
    assert t_quantile(0.995, 3) == pytest.approx(5.8409, abs=1e-3)


def test_mean_ci_is_the_student_t_interval():
    ci = mean_ci([1, 2, 3, 4, 5])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert (ci.mean, ci.n) == (3.0, 5)
    assert ci.low == pytest.approx(3 - half, abs=1e-5) and ci.high == pytest.approx(3 + half, abs=1e-5)
    one = mean_ci([0.7])
    assert (one.mean, one.low, one.high, one.n) == (0.7, 0.7, 0.7, 1)
    with pytest.raises(ValueError, match="at least one"):
        mean_ci([])


def test_per_run_macro_is_the_mean_of_task_accuracies():
    rows = rows_for("sae", 0, 3, {"math": np.array([1, 1, 1, 0]), "code": np.array([1, 0])})
    [unit] = per_run_scores(pa.Table.from_pylist(rows))
    assert (unit.bench_seed, unit.run_seed, unit.method) == (0, 3, "sae")
    assert unit.accuracy == {"code": 0.5, "math": 0.75}
    assert unit.macro == 0.625  # each task weighs the same, not each item (4/6 would be 0.667)


def test_deterministic_methods_count_once_per_bench_seed():
    rng = np.random.default_rng(0)
    rows = grid(rng, {"sae": 0.6}, benches=(0, 1, 2), runs=range(4))
    for bench in (0, 1, 2):
        rows += rows_for("ties", bench, 0, draw(rng, 0.55))
        for run in (1, 2, 3):  # other runs of a deterministic method are ignored, whatever they hold
            rows += rows_for("ties", bench, run, {t: np.zeros(N_ITEMS) for t in TASKS})
    summary = summarize_methods(rows, deterministic={"ties"})
    assert summary["sae"]["macro"].n == 12
    assert {s.n for s in summary["ties"].values()} == {3}
    assert 0.5 < summary["ties"]["macro"].low  # the all-zero runs were not counted
    units = [u for u in per_run_scores(rows, {"ties"}) if u.method == "ties"]
    assert [(u.bench_seed, u.run_seed) for u in units] == [(0, 0), (1, 0), (2, 0)]
    # Paired with a search, the deterministic method's one unit per bench seed serves every run.
    assert paired_difference(rows, "sae", "ties", {"ties"}, n_boot=200)["macro"].n_units == 12
    # Counted as a search instead, its zero runs would drag it down.
    assert summarize_methods(rows, deterministic=set())["ties"]["macro"].mean < 0.2


def test_a_known_difference_is_found():
    rows = grid(np.random.default_rng(1), {"sae": 0.7, "weight_average": 0.5})
    diffs = paired_difference(pa.Table.from_pylist(rows), "sae", "weight_average", set(), n_boot=2000)
    assert set(diffs) == {*TASKS, "macro"}
    for d in diffs.values():
        assert d.low > 0 and d.low < 0.2 < d.high
        assert d.low < d.mean < d.high
        assert (d.wins, d.ties, d.n_units) == (10, 0, 10)
    assert diffs["macro"].mean == pytest.approx(np.mean([diffs[t].mean for t in TASKS]))


def test_no_difference_is_covered():
    rng = np.random.default_rng(2)
    rows = grid(rng, {"sae": 0.6, "pso": 0.6})
    same = [dict(r, method="copy") for r in rows if r["method"] == "sae"]
    for task, d in paired_difference(rows, "sae", "pso", set(), n_boot=1000).items():
        assert d.low < 0 < d.high, task
    # Identical scores: every resample of the same items differs by exactly nothing.
    d = paired_difference(rows + same, "sae", "copy", set(), n_boot=200)["macro"]
    assert (d.mean, d.low, d.high, d.wins, d.ties) == (0.0, 0.0, 0.0, 0, 10)


def test_the_bootstrap_is_paired():
    """The other method is the reference with 3 % of its correct items flipped to wrong: item by
    item they almost always agree, so the paired interval is narrow and excludes 0, while
    resampling the methods' items independently cannot see that and is much wider."""
    rng = np.random.default_rng(3)
    rows = []
    for bench in (0, 1):
        for run in range(3):
            ref = draw(rng, 0.7)
            flipped = {t: np.where(rng.random(N_ITEMS) < 0.03, 0.0, s) for t, s in ref.items()}
            rows += rows_for("sae", bench, run, ref) + rows_for("m2n2", bench, run, flipped)
    scores = load_scores(rows, set())
    paired = paired_difference(scores, "sae", "m2n2", set(), n_boot=1000)["macro"]
    unpaired = paired_difference(scores, "sae", "m2n2", set(), n_boot=1000, paired=False)["macro"]
    assert paired.mean == unpaired.mean  # the point estimate does not resample
    assert 0 < paired.low < paired.mean < paired.high
    assert paired.high - paired.low < 0.4 * (unpaired.high - unpaired.low)


def test_multinomial_and_index_resampling_agree(monkeypatch):
    """Resampling by multinomial counts over distinct values is the same bootstrap as resampling
    item indices (used for many distinct scores): the intervals agree up to Monte Carlo noise."""
    rows = grid(np.random.default_rng(4), {"sae": 0.65, "ties": 0.6}, runs=range(3))
    scores = load_scores(rows, {"ties"})
    by_counts = paired_difference(scores, "sae", "ties", {"ties"}, n_boot=2000)["macro"]
    monkeypatch.setattr(stats, "_MULTINOMIAL_MAX_VALUES", 0)
    by_index = paired_difference(scores, "sae", "ties", {"ties"}, n_boot=2000)["macro"]
    assert by_index.mean == by_counts.mean
    assert by_index.low == pytest.approx(by_counts.low, abs=0.003)
    assert by_index.high == pytest.approx(by_counts.high, abs=0.003)


def test_two_searches_pair_on_their_shared_units():
    rows = grid(np.random.default_rng(5), {"sae": 0.6, "pso": 0.6}, runs=range(3))
    rows = [r for r in rows if not (r["method"] == "pso" and r["bench_seed"] == 1 and r["run_seed"] == 2)]
    assert paired_difference(rows, "sae", "pso", set(), n_boot=100)["macro"].n_units == 5
    with pytest.raises(ValueError, match="share no"):
        paired_difference(
            [r for r in rows if r["method"] == "sae"]
            + [dict(r, run_seed=r["run_seed"] + 10) for r in rows if r["method"] == "pso"],
            "sae",
            "pso",
            set(),
        )


def test_items_scored_for_one_method_only_are_an_error():
    rows = grid(np.random.default_rng(6), {"sae": 0.6, "base": 0.5}, runs=range(2))
    dropped = {"code-3", "code-4", "code-5"}
    rows = [r for r in rows if not (r["method"] == "base" and r["bench_seed"] == 1 and r["example_id"] in dropped)]
    with pytest.raises(ValueError, match=r"task 'code', bench seed 1: .* 3 only for 'sae' \(run seed 0;"):
        paired_difference(rows, "sae", "base", {"base"})


def test_bad_tables_are_refused():
    rows = rows_for("sae", 0, 0, {"math": np.ones(3)})
    with pytest.raises(ValueError, match="lacks columns"):
        load_scores([{k: v for k, v in r.items() if k != "score"} for r in rows], set())
    with pytest.raises(ValueError, match="twice"):
        load_scores(rows + rows[:1], set())
    with pytest.raises(ValueError, match="no scores for method 'pso'"):
        paired_difference(rows, "sae", "pso", set())
    with pytest.raises(ValueError, match="loaded with"):
        summarize_methods(load_scores(rows, set()), {"ties"})
