"""Performance and fitness (SAE-SPEC §4)."""

from __future__ import annotations

import pytest

from saemerge.core.fitness import fitness, macro_average
from saemerge.errors import SaeMergeError


def test_macro_average_weighs_tasks_equally():
    # GSM8K 1319 items at 0.2 and MMLU-ProX 200 items at 0.6 -> 0.4, not the pooled mean
    assert macro_average({"gsm8k": 0.2, "mmlu_prox": 0.6}) == pytest.approx(0.4)
    assert macro_average({"only": 0.7}) == pytest.approx(0.7)
    with pytest.raises(SaeMergeError, match="no task scores"):
        macro_average({})


def test_macro_average_with_task_weights():
    assert macro_average({"a": 0.2, "b": 0.6}, {"a": 3, "b": 1}) == pytest.approx(0.3)
    # a task without a weight weighs 1; no weights (or an empty table): equal weights, bit for bit
    assert macro_average({"a": 0.2, "b": 0.6}, {"a": 3}) == pytest.approx((0.6 + 0.6) / 4)
    assert macro_average({"a": 0.1, "b": 0.7}, {}) == macro_average({"a": 0.1, "b": 0.7})


def test_fitness():
    assert fitness(0.5, 0.6) == pytest.approx(0.53)
    assert fitness(0.5, 0.6, gamma=0.0) == 0.5
    assert fitness(0.4, 1.0, gamma=0.1) == pytest.approx(0.5)
    # sparser wins a tie in score
    assert fitness(0.5, 0.6) > fitness(0.5, 0.1)


def test_when_gamma_is_zero_is_decided_once():
    """PSO searches and reports with the raw score; M2N2 searches with the run's γ and reports the
    raw score; SAE uses its γ for both (SAE-SPEC §7). The names are the run parameters' searches."""
    from types import SimpleNamespace

    from saemerge.config import M2N2, PSO, SAE, SEARCHES
    from saemerge.core.fitness import RAW_SCORE_FITNESS, RAW_SCORE_REPORTED, reported_gamma, search_gamma
    from saemerge.steps.evaluation import fitness_gamma
    from saemerge.steps.final import RAW_SCORE_SEARCHES

    assert set(RAW_SCORE_FITNESS) <= set(RAW_SCORE_REPORTED) <= set(SEARCHES)
    assert [search_gamma(s, 0.05) for s in (SAE, PSO, M2N2)] == [0.05, 0.0, 0.05]
    assert [reported_gamma(s, 0.05) for s in (SAE, PSO, M2N2)] == [0.05, 0.0, 0.0]
    assert RAW_SCORE_SEARCHES == (PSO, M2N2)
    assert fitness_gamma(SimpleNamespace(search=PSO, gamma=0.1)) == 0.0
    assert fitness_gamma(SimpleNamespace(search=M2N2, gamma=0.1)) == 0.1
