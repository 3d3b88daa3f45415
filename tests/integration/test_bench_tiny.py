"""Acceptance of the default ``tiny`` benchmark (minutes of CPU): experts are clear specialists,
and merging them keeps a good part of both skills (what the benchmark exists to show)."""

from __future__ import annotations

import pytest

from saemerge.bench.build import build_bench
from saemerge.bench.reference_scorer import evaluate_checkpoint
from saemerge.ops.baselines import merge_checkpoints

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.acceptance]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "tiny"
    return out, build_bench(out, "tiny", seed=0)["models"]


def test_tiny_experts_are_specialists(tiny):
    _, acc = tiny
    assert acc["math"]["math"] >= 0.5
    assert acc["multilingual"]["multilingual"] >= 0.6
    # each expert is clearly worse at the other expert's task
    assert acc["math"]["multilingual"] <= acc["multilingual"]["multilingual"] - 0.2
    assert acc["multilingual"]["math"] <= acc["math"]["math"] - 0.2
    # the base is below each expert on the expert's own task
    assert acc["base"]["math"] < acc["math"]["math"]
    assert acc["base"]["multilingual"] < acc["multilingual"]["multilingual"]


def test_task_arithmetic_of_the_experts_keeps_both_skills(tiny, tmp_path):
    out, acc = tiny
    models = [out / "models" / "math", out / "models" / "multilingual"]
    merged = {}
    for alpha in (0.3, 0.5, 0.7, 1.0):  # SAE-SPEC §7's grid
        dst = tmp_path / f"ta-{alpha}"
        merge_checkpoints("task_arithmetic", models, dst, base=out / "models" / "base", alpha=alpha)
        merged[alpha] = evaluate_checkpoint(dst, out / "data")
    both = [a for a, m in merged.items() if m["math"] >= 0.3 and m["multilingual"] >= 0.4]
    assert both, f"no alpha keeps both skills: {merged}"
    # and the merge is a merge: at alpha 0.7 each skill is far above the other expert's
    assert merged[0.7]["math"] >= acc["multilingual"]["math"] + 0.2
    assert merged[0.7]["multilingual"] >= acc["math"]["multilingual"] + 0.2


def test_weight_average_beats_each_expert_on_the_macro_average(tiny, tmp_path):
    """SAE's merges are convex (λ·A + (1−λ)·B): they can only win if the midpoint keeps both skills."""
    out, acc = tiny
    dst = tmp_path / "wa"
    merge_checkpoints("linear", [out / "models" / "math", out / "models" / "multilingual"], dst)
    wa = evaluate_checkpoint(dst, out / "data")
    macro = {name: (a["math"] + a["multilingual"]) / 2 for name, a in acc.items()}
    assert wa["math"] >= 0.4 and wa["multilingual"] >= 0.4, wa
    assert (wa["math"] + wa["multilingual"]) / 2 >= max(macro["math"], macro["multilingual"]) + 0.1, (wa, macro)
