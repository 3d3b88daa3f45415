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
