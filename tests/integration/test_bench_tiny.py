"""Acceptance of the default ``tiny`` benchmark (minutes of CPU): experts are clear specialists."""

from __future__ import annotations

import pytest

from saemerge.bench.build import build_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.acceptance]


def test_tiny_experts_are_specialists(tmp_path):
    acc = build_bench(tmp_path / "tiny", "tiny", seed=0)["models"]
    assert acc["math"]["math"] >= 0.5
    assert acc["multilingual"]["multilingual"] >= 0.6
    # each expert is clearly worse at the other expert's task
    assert acc["math"]["multilingual"] <= acc["multilingual"]["multilingual"] - 0.2
    assert acc["multilingual"]["math"] <= acc["math"]["math"] - 0.2
    # the base is below each expert on the expert's own task
    assert acc["base"]["math"] < acc["math"]["math"]
    assert acc["base"]["multilingual"] < acc["multilingual"]["multilingual"]
