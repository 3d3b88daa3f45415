"""GSM8K-style word problems: templated stories with small numbers and 1-3 operations.

Every problem follows one person's count of one kind of item through 1-3 operations
(add, subtract, multiply, divide). The answer is GSM8K-shaped: one line per operation
that restates the story's sentence and gives the equation, then ``#### N``::

    question: "Mia has 3 boxes of pens. Each box holds 4 pens. She gives 5 pens to Sam.
               How many pens does Mia have now?"
    answer:   "Each box holds 4 pens, so 3 * 4 = 12.\\nShe gives 5 pens to Sam, so 12 - 5 = 7.\\n#### 7"

Restating the sentence puts each operand right before its equation: a small model
copies text in order easily, but finds "the number of the third sentence" poorly
(measured: with bare equations, 38 % of test answers picked a wrong operand).

All intermediate values stay in 1..40; sums and differences move by at most 9, and
products/quotients use a single-digit factor (2 or 3 mid-story, 2-6 for boxes), so a
1M-parameter model learns the arithmetic from a few thousand examples.

The base model's corpus has two more kinds of text: :func:`worked_example` (other
problems, solved in a textbook frame, not the exam's) and :func:`iter_drills` (number
chains in the exam's frame, no stories).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

NAMES = (
    ("Tom", "he"),
    ("Mia", "she"),
    ("Sam", "he"),
    ("Ana", "she"),
    ("Leo", "he"),
    ("Zoe", "she"),
    ("Max", "he"),
    ("Ivy", "she"),
    ("Ben", "he"),
    ("Eva", "she"),
    ("Dan", "he"),
    ("Lily", "she"),
    ("Omar", "he"),
    ("Nina", "she"),
    ("Raj", "he"),
    ("Sara", "she"),
    ("Paul", "he"),
    ("Kate", "she"),
    ("Jack", "he"),
    ("Emma", "she"),
    ("Luis", "he"),
    ("Rosa", "she"),
    ("Yuki", "she"),
    ("Ali", "he"),
)
ITEMS = (
    "apples",
    "pens",
    "books",
    "stickers",
    "cookies",
    "marbles",
    "cards",
    "shells",
    "coins",
    "eggs",
    "stamps",
    "candies",
    "flowers",
    "toys",
    "balls",
    "pencils",
)
MAX_VALUE = 40
MAX_OPERAND = 9  # added or taken away at once: keeps the +/- facts few enough to learn

# Each story step opens with the marker of its position; the answer's line repeats it.
MARKERS = ("First", "Then", "Finally")

# Phrasings per operation; {p} pronoun, {o} object pronoun, {n} number, {x} items, {f} another person.
_ADD = (
    "{p} buys {n} more {x}.",
    "{f} gives {o} {n} {x}.",
    "{p} finds {n} more {x}.",
    "{p} gets {n} {x} from {f}.",
)
_SUB = (
    "{p} gives {n} {x} to {f}.",
    "{p} loses {n} {x}.",
    "{p} sells {n} {x}.",
    "{f} takes {n} {x} from {o}.",
)
_MUL = (
    "{p} gets {n} times as many {x}.",
    "{p} ends up with {n} times as many {x}.",
)
_DIV = (
    "{p} puts the {x} into {n} equal bags and keeps one bag.",
    "{p} splits the {x} into {n} equal groups and keeps one group.",
)
_OBJ = {"he": "him", "she": "her"}


def _sentence(rng: random.Random, templates, marker: str, pron: str, n: int, items: str, friend: str) -> str:
    t = rng.choice(templates)
    return f"{marker}, " + t.format(p=pron, o=_OBJ[pron], n=n, x=items, f=friend)


def _next_op(rng: random.Random, cur: int) -> tuple[str, int] | None:
    """Pick an operation and operand that keep the value in 1..MAX_VALUE."""
    choices = ["add", "sub"]
    if cur <= 12:  # x2 and x3 of small counts only
        choices.append("mul")
    divisors = [k for k in (2, 3) if cur % k == 0]
    if divisors:
        choices.append("div")
    op = rng.choice(choices)
    if op == "add":
        hi = min(MAX_OPERAND, MAX_VALUE - cur)
        return ("add", rng.randint(1, hi)) if hi >= 1 else None
    if op == "sub":
        return ("sub", rng.randint(1, min(MAX_OPERAND, cur - 1))) if cur >= 2 else None
    if op == "mul":
        ks = [k for k in (2, 3) if cur * k <= MAX_VALUE]
        return ("mul", rng.choice(ks)) if ks else None
    return ("div", rng.choice(divisors))


_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def _apply(op: str, a: int, b: int) -> int:
    return {"add": a + b, "sub": a - b, "mul": a * b, "div": a // b}[op]


def make_problem(rng: random.Random, n_ops: int) -> dict[str, str]:
    """One problem with exactly ``n_ops`` equations in its answer."""
    (name, pron), (friend, _) = rng.sample(NAMES, 2)
    items = rng.choice(ITEMS)
    sentences: list[str] = []
    lines: list[str] = []  # one per operation: the story's sentence, then its equation
    if rng.random() < 0.3:  # start with a product: boxes of items
        a, b = rng.randint(2, 6), rng.randint(2, 6)
        cur = a * b
        sentences.append(f"{name} has {a} boxes of {items}. Each box holds {b} {items}.")
        lines.append(f"Each box holds {b} {items}, so {a} * {b} = {cur}.")
    else:
        cur = rng.randint(2, 20)
        sentences.append(f"{name} has {cur} {items}.")
    while len(lines) < n_ops:
        step = _next_op(rng, cur)
        if step is None:
            continue
        op, n = step
        new = _apply(op, cur, n)
        marker = MARKERS[len(sentences) - 1]
        templates = {"add": _ADD, "sub": _SUB, "mul": _MUL, "div": _DIV}[op]
        sentence = _sentence(rng, templates, marker, pron, n, items, friend)
        sentences.append(sentence)
        lines.append(f"{sentence.removesuffix('.')}, so {cur} {_SYMBOL[op]} {n} = {new}.")
        cur = new
    sentences.append(f"How many {items} does {name} have now?")
    return {"question": " ".join(sentences), "answer": "\n".join(lines) + f"\n#### {cur}"}


def iter_problems(seed: int) -> Iterator[dict[str, str]]:
    """An endless, seeded stream of problems with 1, 2 or 3 operations (50/30/20 %)."""
    rng = random.Random(f"math-{seed}")
    while True:
        n_ops = rng.choices((1, 2, 3), weights=(5, 3, 2))[0]
        yield make_problem(rng, n_ops)


def worked_example(problem: dict[str, str]) -> str:
    """A solved problem as a textbook prints it: the base model's way of seeing word problems.

    The steps are the answer's lines; only the frame differs from the exam (``Problem:`` /
    ``Solution:`` / ``The answer is N.`` instead of ``Question:`` / ``Answer:`` / ``#### N``),
    so the base can solve stories but scores 0 under GSM8K's strict match until the
    math expert learns to answer them in the exam's format.
    """
    *lines, final = problem["answer"].split("\n")
    number = final.removeprefix("#### ")
    return f"Problem: {problem['question']}\nSolution: " + "\n".join(lines) + f"\nThe answer is {number}."


_DRILL_WORDS = {"add": "Add", "sub": "Subtract", "mul": "Multiply by", "div": "Divide by"}


def iter_drills(seed: int) -> Iterator[dict[str, str]]:
    """Arithmetic drills in the exam's format, for the base model: no stories, just chains of numbers.

    ``{"question": "Start with 7. Add 3. Multiply by 2. What is the result?",
    "answer": "7 + 3 = 10.\n10 * 2 = 20.\n#### 20"}``: the same operations and ranges as
    the problems. A base LLM has seen exam-style questions and answers before anyone
    fine-tunes it on word problems; these give the tiny base the same footing, so the
    math expert only learns to read a story into such a chain, not the answer format.
    """
    rng = random.Random(f"qa-drills-{seed}")
    while True:
        cur = rng.randint(2, 20)
        steps: list[str] = [f"Start with {cur}."]
        lines: list[str] = []
        n_ops = rng.choice((1, 2, 3))
        while len(lines) < n_ops:
            step = _next_op(rng, cur)
            if step is None:
                continue
            op, n = step
            new = _apply(op, cur, n)
            steps.append(f"{_DRILL_WORDS[op]} {n}.")
            lines.append(f"{cur} {_SYMBOL[op]} {n} = {new}.")
            cur = new
        yield {"question": " ".join(steps) + " What is the result?", "answer": "\n".join(lines) + f"\n#### {cur}"}
