"""The CPU defaults are unchanged by the GPU ones: eval_batch_size 0 (the default) and eval_dtype auto
score every example of the micro bench exactly as batch 16 did."""

import pytest

from saemerge.evaluate.evaluator import Evaluator
from saemerge.evaluate.sampling import draw_test_set

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASKS = ["saebench_math", "saebench_multilingual"]


def test_default_batch_on_the_cpu_scores_as_batch_16(micro_bench, tmp_path):
    test_sets = draw_test_set(TASKS, None, data=micro_bench, seed=0, out_dir=tmp_path)
    rows = {}
    for batch in (16, 0):
        with Evaluator(TASKS, device="cpu", dtype="auto", batch_size=batch) as ev:
            for name in ("base", "math"):
                res = ev.score(micro_bench / "models" / name, test_sets)
                rows[batch, name] = [(r.example_id, r.correct, r.answer) for r in res.per_example]
    for name in ("base", "math"):
        assert rows[0, name] == rows[16, name] and rows[0, name]
