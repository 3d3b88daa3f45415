"""Small hand-made datasets in the layouts the evaluator reads, for tests and benchmarks.

- :func:`write_bench_data`: the tiny benchmark's data contract
  (``data/math`` and ``data/multilingual``, ``{train,validation,test}.jsonl``);
- :func:`write_real_data`: the real datasets' field layout (``gsm8k/`` as openai/gsm8k rows,
  ``mmlu_prox/`` as li-lab/MMLU-ProX rows plus ``language``), a few rows each, since the
  real data cannot be downloaded here.

The questions are easy arithmetic so a scripted model can answer them; the language mix
is deliberately uneven so stratification is visible.
"""

from __future__ import annotations

import random
from pathlib import Path

from saemerge.evaluate.formats import LETTERS
from saemerge.evaluate.taskspec import write_jsonl

BENCH_LANGUAGES = {"en": 5, "de": 3, "sw": 2}  # relative weights
SPLIT_SIZES = {"train": 40, "validation": 10, "test": 30}


def _math(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(1, 40), rng.randint(1, 40)
    return f"What is {a} plus {b}?", f"{a} + {b} = {a + b}\n#### {a + b}"


def _mc(rng: random.Random, n_options: int) -> tuple[str, list[str], int]:
    a, b = rng.randint(1, 20), rng.randint(1, 20)
    options = rng.sample([str(v) for v in range(2, 41) if v != a + b], n_options - 1)
    index = rng.randrange(n_options)
    options.insert(index, str(a + b))
    return f"What is {a} plus {b}?", options, index


def _languages(rng: random.Random, n: int, weights: dict[str, int]) -> list[str]:
    return rng.choices(list(weights), weights=list(weights.values()), k=n)


def write_bench_data(root: str | Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """``root/data/{math,multilingual}/{split}.jsonl`` in the tiny benchmark's data contract."""
    rng = random.Random(seed)
    data = Path(root) / "data"
    for split, n in (sizes or SPLIT_SIZES).items():
        math_rows = []
        for i in range(n):
            q, a = _math(rng)
            math_rows.append({"id": f"math-{split}-{i}", "question": q, "answer": a})
        write_jsonl(data / "math" / f"{split}.jsonl", math_rows)
        mc_rows = []
        for i, lang in enumerate(_languages(rng, n, BENCH_LANGUAGES)):
            q, options, index = _mc(rng, rng.choice([4, 6, 10]))
            mc_rows.append(
                {
                    "id": f"ml-{split}-{i}",
                    "question": q,
                    "options": options,
                    "answer": LETTERS[index],
                    "answer_index": index,
                    "category": rng.choice(["math", "other"]),
                    "language": lang,
                }
            )
        write_jsonl(data / "multilingual" / f"{split}.jsonl", mc_rows)
    return Path(root)


def _mmlu_prox_row(rng: random.Random, qid: int, lang: str, category: str, with_cot: bool) -> dict:
    from saemerge.evaluate.taskfns import _lang_utils

    q, options, index = _mc(rng, 10)
    row = {"question_id": qid, "question": q}
    row.update({f"option_{i}": options[i] if i < len(options) else None for i in range(10)})
    cot_prefix = _lang_utils(lang).lang_dict[4]  # "A: Let's think step by step." in the language
    answer_phrase = _lang_utils(lang).lang_dict[5].format(LETTERS[index])
    row.update(
        {
            "answer": LETTERS[index],
            "answer_index": index,
            "cot_content": f"{cot_prefix} {q} {options[index]}. {answer_phrase}." if with_cot else "",
            "category": category,
            "src": "hand-made",
            "language": lang,
        }
    )
    return row


def write_real_data(
    root: str | Path,
    *,
    gsm8k: dict[str, int] | None = None,
    languages: dict[str, int] | None = None,
    categories: tuple[str, ...] = ("math", "computer science"),
    seed: int = 0,
) -> Path:
    """``root/gsm8k/{train,test}.jsonl`` and ``root/mmlu_prox/{validation,test}.jsonl``.

    GSM8K rows have only ``question`` and ``answer`` (ids are assigned on reading, as for
    the real export). MMLU-ProX validation holds 5 rows per (language, category), as the
    real one does; ``languages`` gives each language's number of test rows.
    """
    rng = random.Random(seed)
    root = Path(root)
    for split, n in (gsm8k or {"train": 20, "test": 8}).items():
        rows = []
        for _ in range(n):
            q, a = _math(rng)
            rows.append({"question": q, "answer": a})
        write_jsonl(root / "gsm8k" / f"{split}.jsonl", rows)
    languages = languages or {"en": 6, "de": 3, "zh": 2}
    val, test, qid = [], [], 0
    for lang, n_test in languages.items():
        for category in categories:
            for _ in range(5):
                val.append(_mmlu_prox_row(rng, qid, lang, category, with_cot=True))
                qid += 1
        for i in range(n_test):
            test.append(_mmlu_prox_row(rng, qid, lang, categories[i % len(categories)], with_cot=False))
            qid += 1
    write_jsonl(root / "mmlu_prox" / "validation.jsonl", val)
    write_jsonl(root / "mmlu_prox" / "test.jsonl", test)
    return root
