"""The tiny benchmark's prompt and answer formats, shared by the evaluator and the bench."""

from __future__ import annotations

import pytest

from saemerge.errors import SaeMergeError
from saemerge.evaluate import formats


def test_math_prompt_and_target_are_gsm8k_zero_shot():
    assert formats.math_prompt("Tom has 3 apples.") == "Question: Tom has 3 apples.\nAnswer:"
    assert formats.math_target("3 + 4 = 7.\n#### 7") == " 3 + 4 = 7.\n#### 7"


def test_mc_prompt_letters_and_choices():
    prompt = formats.mc_prompt("Which?", ["red", "blue", "green", "gold"])
    assert prompt == "Question: Which?\nOptions:\nA. red\nB. blue\nC. green\nD. gold\nAnswer:"
    assert formats.mc_choices(4) == [" A", " B", " C", " D"]
    assert formats.mc_target(2) == " C"
    assert formats.LETTERS == tuple("ABCDEFGHIJ")
    ten = formats.mc_prompt("q", [str(i) for i in range(10)])
    assert ten.splitlines()[-2] == "J. 9"


@pytest.mark.parametrize("n", [0, 1, 11])
def test_mc_prompt_rejects_bad_option_counts(n):
    with pytest.raises(SaeMergeError, match="options"):
        formats.mc_prompt("q", ["x"] * n)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3 + 4 = 7.\n#### 7", "7"),
        ("#### -12", "-12"),
        ("#### 1,200.", "1200"),
        ("#### 3.5", "3.5"),
        ("first #### 4 then #### 5", "4"),  # strict match takes the first
        ("the answer is 7", None),
        ("####7", None),  # GSM8K's regex needs the space
    ],
)
def test_extract_gsm8k_answer(text, expected):
    assert formats.extract_gsm8k_answer(text) == expected


def test_generation_is_cut_at_stop_sequences_before_matching():
    gold = "2 + 2 = 4.\n#### 4"
    assert formats.math_correct(" 2 + 2 = 4.\n#### 4\n\nQuestion: more #### 9", gold)
    assert not formats.math_correct(" 2 + 2 = 5.\n#### 5", gold)
    # a final answer that only appears after the stop sequence does not count
    assert not formats.math_correct(" no idea\n\n#### 4", gold)
    assert formats.truncate_at_stop("a Question: b\n\nc") == "a "


def test_gold_answer_without_final_line_is_an_error():
    with pytest.raises(SaeMergeError, match="####"):
        formats.gold_math_answer("7")
