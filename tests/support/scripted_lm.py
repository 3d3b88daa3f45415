"""A scripted language model at lm-eval's LM seam, for testing the scoring path.

:class:`ScriptedLM` answers every request from an answer key (example id -> gold answer)
either correctly or wrongly, in the form a real model would: ``"... #### 42"`` for
GSM8K-style generation, ``"the answer is (C)"`` in the doc's language for MMLU-ProX
generation, and the highest log-likelihood on the gold (or a wrong) option for multiple
choice. Everything after the model (prompt building, lm-eval's filters, exact_match/acc,
our mapping back to example ids) is the real thing, so a run must score exactly 1.0 or 0.0.

The test session registers it as ``saemerge-scripted``
(:func:`saemerge.evaluate.evaluator.register_model`, in ``tests/conftest.py``); its
``pretrained`` argument is an answer-key file or a directory holding ``answers.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from saemerge.evaluate.formats import LETTERS, gold_math_answer
from saemerge.evaluate.taskfns import mmlu_prox_language_overrides
from saemerge.evaluate.taskspec import read_jsonl

#: The name tests give ScriptedLM with register_model.
MODEL_NAME = "saemerge-scripted"
ANSWER_KEY = "answers.json"
_LETTER_GROUP = r"\(?([ABCDEFGHIJ])\)?"


def gold_answer(doc: dict) -> str:
    """The gold answer of a doc: the final number (math) or the option letter (multiple choice)."""
    if "answer_index" in doc:
        return LETTERS[int(doc["answer_index"])]
    return gold_math_answer(doc["answer"])


def write_answer_key(samples: Mapping[str, str | Path], out_dir: str | Path) -> Path:
    """Write ``out_dir/answers.json`` ({example id: gold answer}) from JSONL samples."""
    key = {doc["id"]: gold_answer(doc) for path in samples.values() for doc in read_jsonl(path)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / ANSWER_KEY).write_text(json.dumps(key, indent=1))
    return out


def _wrong_number(gold: str) -> str:
    return gold + "1" if gold != "0" else "1"


def _wrong_letter(gold: str) -> str:
    return "B" if gold == "A" else "A"  # every question has at least two options


class ScriptedLM(LM):
    """Answers from an answer key.

    Args:
        pretrained: an answer-key JSON file, or a directory with ``answers.json``.
        mode: ``"right"`` answers every example correctly, ``"wrong"`` never does.
        batch_size, device: accepted and ignored (lm-eval passes them to every model).
    """

    def __init__(self, pretrained: str, mode: str = "right", batch_size=None, device=None, **kwargs) -> None:
        super().__init__()
        path = Path(pretrained)
        path = path / ANSWER_KEY if path.is_dir() else path
        self.answers: dict[str, str] = json.loads(path.read_text())
        if mode not in ("right", "wrong"):
            raise ValueError(f"mode must be 'right' or 'wrong', not {mode!r}")
        self.right = mode == "right"
        self.calls = {"generate_until": 0, "loglikelihood": 0}

    def _gold(self, req: Instance) -> str:
        return self.answers[req.doc["id"]]

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        out = []
        for req in requests:
            self.calls["generate_until"] += 1
            gold = self._gold(req)
            if gold in LETTERS and "language" in req.doc:  # MMLU-ProX: "the answer is (X)" in the doc's language
                letter = gold if self.right else _wrong_letter(gold)
                pattern = mmlu_prox_language_overrides(req.doc["language"])["filter_list"][0]["filter"][0][
                    "regex_pattern"
                ]
                phrase = pattern.replace(_LETTER_GROUP, f"({letter})")
                out.append("Let's think step by step. " + re.sub(r"\\(.)", r"\1", phrase) + ".")
            else:
                number = gold if self.right else _wrong_number(gold)
                out.append(f" Some reasoning.\n#### {number}")
        return out

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for req in requests:
            self.calls["loglikelihood"] += 1
            gold = self._gold(req)
            best = gold if self.right else _wrong_letter(gold)
            hit = req.args[1].strip() == best
            out.append((0.0 if hit else -10.0, hit))
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        return [0.0 for _ in requests]
