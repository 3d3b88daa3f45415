"""Prompt and answer formats shared by the tiny benchmark's trainer and the evaluator.

These are the exact strings lm-eval builds for GSM8K-style and MMLU-ProX-style tasks
(zero-shot). The experts are trained on ``prompt + target + "\\n\\n"`` (+ EOS), so the
evaluator must format prompts with these functions and nothing else:

- math: prompt ``"Question: {question}\\nAnswer:"``, target ``" {answer}"``; generation
  stops at ``"\\n\\n"`` or ``"Question:"``; the prediction is the number after ``"#### "``
  (GSM8K's strict-match regex), compared exactly with the number after ``"#### "`` in
  the gold answer.
- multiple choice: prompt ``"Question: {question}\\nOptions:\\nA. {opt0}\\n...\\nAnswer:"``,
  choices ``" A"``, ``" B"``, ...; the prediction is the choice with the highest
  log-likelihood (lm-eval ``multiple_choice``, metric ``acc``).

Training texts carry no BOS token and the tokenizer adds none, so prompts are encoded
the same way whether or not the evaluator asks for special tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from saemerge.errors import SaeMergeError

#: Option letters, MMLU-Pro style (up to 10 options).
LETTERS: tuple[str, ...] = tuple("ABCDEFGHIJ")

#: Where math generation stops (lm-eval ``until``).
STOP_SEQUENCES: tuple[str, ...] = ("\n\n", "Question:")

#: Appended after every training target so the model learns to stop.
END_OF_EXAMPLE = "\n\n"

#: GSM8K's strict-match filter (lm-eval ``gsm8k.yaml``).
GSM8K_ANSWER_RE = re.compile(r"#### (\-?[0-9\.\,]+)")

# lm-eval's gsm8k exact_match ignores these before comparing.
_IGNORE_RES = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def math_prompt(question: str) -> str:
    """The zero-shot GSM8K prompt for one question."""
    return f"Question: {question}\nAnswer:"


def math_target(answer: str) -> str:
    """The continuation the math expert is trained to produce (reasoning, then ``#### N``)."""
    return f" {answer}"


def mc_prompt(question: str, options: Sequence[str]) -> str:
    """The zero-shot MMLU-Pro-style prompt: question, lettered options, ``Answer:``.

    Raises:
        SaeMergeError: when there are fewer than 2 or more than 10 options.
    """
    if not 2 <= len(options) <= len(LETTERS):
        raise SaeMergeError(f"options: need 2 to {len(LETTERS)} options, got {len(options)}")
    lines = [f"Question: {question}", "Options:"]
    lines += [f"{letter}. {opt}" for letter, opt in zip(LETTERS, options)]
    lines.append("Answer:")
    return "\n".join(lines)


def mc_choices(n_options: int) -> list[str]:
    """The scored continuations for ``n_options`` options: ``[" A", " B", ...]``."""
    if not 1 <= n_options <= len(LETTERS):
        raise SaeMergeError(f"options: need 1 to {len(LETTERS)} options, got {n_options}")
    return [f" {letter}" for letter in LETTERS[:n_options]]


def mc_target(answer_index: int) -> str:
    """The continuation for the correct option: ``" C"`` for index 2."""
    return f" {LETTERS[answer_index]}"


def training_text(prompt: str, target: str) -> str:
    """One training example's text (the trainer appends EOS as a token)."""
    return prompt + target + END_OF_EXAMPLE


def truncate_at_stop(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """Cut a generation at the first stop sequence, as lm-eval's ``until`` does."""
    cut = len(text)
    for stop in stops:
        pos = text.find(stop)
        if pos != -1:
            cut = min(cut, pos)
    return text[:cut]


def extract_gsm8k_answer(text: str) -> str | None:
    """The number after the first ``#### `` (GSM8K strict match), normalised; None if absent.

    Normalisation follows lm-eval's gsm8k exact_match: commas, ``$`` and a trailing
    ``.`` are dropped, so ``"#### 1,200."`` gives ``"1200"``.
    """
    match = GSM8K_ANSWER_RE.search(text)
    if match is None:
        return None
    return normalise_number(match.group(1))


def normalise_number(s: str) -> str:
    """Apply lm-eval's gsm8k ``regexes_to_ignore`` and strip whitespace."""
    for pattern in _IGNORE_RES:
        s = pattern.sub("", s)
    return s.strip()


def gold_math_answer(answer: str) -> str:
    """The gold number of a GSM8K-style answer (``"...\\n#### 42"`` gives ``"42"``).

    Raises:
        SaeMergeError: when the answer has no ``#### N`` line.
    """
    value = extract_gsm8k_answer(answer)
    if value is None:
        raise SaeMergeError(f"answer: no '#### N' final answer in {answer[-40:]!r}")
    return value


def math_correct(generation: str, gold_answer: str) -> bool:
    """Exact match of a raw generation (truncated at the stop sequences) with the gold answer."""
    predicted = extract_gsm8k_answer(truncate_at_stop(generation))
    return predicted is not None and predicted == gold_math_answer(gold_answer)
