"""The evaluator on the micro tiny benchmark, cross-checked against the bench's own scorer.

``saemerge.bench.reference_scorer`` scores the benchmark in-process (greedy generation and option
log-likelihoods, with the same prompts); lm-eval through the evaluator must agree with it
on every example: the same correctness and the same extracted answer (after lm-eval's
``regexes_to_ignore``, which exact_match applies and the per-example record does not).
"""

from __future__ import annotations

import pytest

from saemerge.bench import reference_scorer
from saemerge.evaluate.evaluator import Evaluator
from saemerge.evaluate.formats import normalise_number
from saemerge.evaluate.sampling import draw_test_set
from saemerge.evaluate.taskspec import read_jsonl

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASKS = ["saebench_math", "saebench_multilingual"]


@pytest.fixture(scope="module")
def micro(micro_bench):
    return micro_bench  # built once per session (tests/conftest.py)


@pytest.fixture(scope="module")
def test_sets(micro, tmp_path_factory):
    return draw_test_set(TASKS, None, data=micro, seed=0, out_dir=tmp_path_factory.mktemp("micro-test"))


def test_micro_models_scored_on_both_tasks_agree_with_the_bench_scorer(micro, test_sets):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    math_docs = read_jsonl(test_sets["saebench_math"])
    mc_docs = read_jsonl(test_sets["saebench_multilingual"])
    with Evaluator(TASKS, device="cpu", batch_size=16) as ev:
        for name in ("base", "math", "multilingual"):
            model_dir = micro / "models" / name
            res = ev.score(model_dir, test_sets)
            assert [r.example_id for r in res.per_example] == [d["id"] for d in math_docs + mc_docs]

            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
            ref = {r["id"]: r for r in reference_scorer.score_math(model, tokenizer, math_docs)}
            ref |= {r["id"]: r for r in reference_scorer.score_mc(model, tokenizer, mc_docs)}
            for row in res.per_example:
                expected = ref[row.example_id]
                assert row.correct == expected["correct"], (name, row, expected)
                # lm-eval keeps the regex's capture ("1."); exact_match drops the "." first
                ours = None if row.answer == "[invalid]" else normalise_number(row.answer)
                assert ours == expected["prediction"], (name, row, expected)
