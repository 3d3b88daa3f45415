"""Prompt and answer formats of the tiny benchmark's tasks, as lm-eval builds them.

These are the exact strings lm-eval builds for GSM8K-style and MMLU-ProX-style tasks
(zero-shot); the task YAMLs (through :mod:`saemerge.evaluate.taskfns`) and the benchmark's
trainer and reference scorer (:mod:`saemerge.bench`) all take them from here, so the experts
are trained on exactly the prompts they are scored on:

- math: prompt ``"Question: {question}\\nAnswer:"``, target ``" {answer}"``; generation
  stops at ``"\\n\\n"`` or ``"Question:"``; the prediction is the number after ``"#### "``
  (GSM8K's strict-match regex), compared exactly with the number after ``"#### "`` in
  the gold answer.
- multiple choice: prompt ``"Question: {question}\\nOptions:\\nA. {opt0}\\n...\\nAnswer:"``,
  choices ``" A"``, ``" B"``, ...; the prediction is the choice with the highest
  log-likelihood (lm-eval ``multiple_choice``, metric ``acc``).

Prompts carry no BOS token and the benchmark's tokenizer adds none, so they are encoded
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

#: GSM8K's strict-match filter (lm-eval ``gsm8k.yaml``).
GSM8K_ANSWER_RE = re.compile(r"#### (\-?[0-9\.\,]+)")

# lm-eval's gsm8k exact_match ignores these before comparing.
_IGNORE_RES = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def math_prompt(question: str) -> str:
    """The zero-shot GSM8K prompt for one question."""
    return f"Question: {question}\nAnswer:"


def math_target(answer: str) -> str:
    """The scored continuation of a math prompt (reasoning, then ``#### N``): ``" " + answer``."""
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
