"""Functions the task YAMLs under ``tasks/`` call through ``!function``.

lm-eval resolves ``!function saemerge.evaluate.taskfns.NAME`` by import, so these are plain,
unit-testable functions. The real MMLU-ProX prompts are not re-implemented here: they call
the installed lm-eval's own per-language ``utils`` and read its per-subject descriptions, so
``mmlu_prox_sae`` builds exactly the prompts of lm-eval's ``mmlu_prox_<lang>_<subject>``.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Any

from lm_eval.api.samplers import ContextSampler

from saemerge.evaluate.formats import math_prompt, mc_choices, mc_prompt

SHOTS_FIELD = "fewshot"
DESCRIPTION_FIELD = "sae_description"


# -- the tiny benchmark -------------------------------------------------------------------
def bench_math_text(doc: dict) -> str:
    return math_prompt(doc["question"])


def bench_mc_text(doc: dict) -> str:
    return mc_prompt(doc["question"], doc["options"])


def bench_mc_choices(doc: dict) -> list[str]:
    # " A", " B", ... with the space included: the YAML sets target_delimiter to "".
    return mc_choices(len(doc["options"]))


# -- few-shot examples attached to each doc -------------------------------------------------
class AttachedShotsSampler(ContextSampler):
    """Few-shot examples chosen at sampling time and stored in each doc's ``fewshot`` list.

    lm-eval's samplers draw from a split of the dataset; ours reads a JSONL sample file, and
    which examples may serve as shots depends on the doc (not itself when the optimisation
    set is drawn from the shot pool; the same language and subject for MMLU-ProX). The
    sampling step decides that (:mod:`saemerge.evaluate.sampling`) and writes the shots into
    the file, so each generation's prompts are fully recorded by its sample file. lm-eval
    passes the eval doc to ``sample`` only when ``fewshot_split == test_split``, which is why
    the task YAMLs set both to ``test``.
    """

    def sample(self, n: int, eval_doc: dict | None = None, df=None, **kwargs) -> list[dict]:
        if eval_doc is None:
            raise ValueError("AttachedShotsSampler needs fewshot_split == test_split")
        return list(eval_doc.get(SHOTS_FIELD) or [])[:n]


# -- real MMLU-ProX (prompts from the installed lm-eval) ------------------------------------
def _lm_eval_mmlu_prox_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent / "mmlu_prox"


@functools.cache
def mmlu_prox_languages() -> tuple[str, ...]:
    """Language codes lm-eval ships MMLU-ProX configs for."""
    root = _lm_eval_mmlu_prox_dir()
    return tuple(sorted(p.name for p in root.iterdir() if (p / f"_{p.name}_template_yaml").is_file()))


@functools.cache
def _lang_utils(lang: str):
    if lang not in mmlu_prox_languages():
        from saemerge.errors import unknown_name

        raise unknown_name("MMLU-ProX language", lang, mmlu_prox_languages())
    return importlib.import_module(f"lm_eval.tasks.mmlu_prox.{lang}.utils")


@functools.cache
def _builtin_config(lang: str, name: str) -> dict[str, Any]:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(_lm_eval_mmlu_prox_dir() / lang / name, resolve_func=False, recursive=False)


def mmlu_prox_text(doc: dict) -> str:
    return _lang_utils(doc["language"]).doc_to_text(doc)


def mmlu_prox_fewshot_text(doc: dict) -> str:
    return _lang_utils(doc["language"]).fewshot_to_text(doc)


def mmlu_prox_description(language: str, category: str) -> str:
    """The description lm-eval's ``mmlu_prox_<language>_<subject>`` task puts before the shots."""
    subject = category.replace(" ", "_")
    _lang_utils(language)
    try:
        return _builtin_config(language, f"mmlu_prox_{language}_{subject}.yaml")["description"]
    except FileNotFoundError:
        from saemerge.errors import SaeMergeError

        raise SaeMergeError(f"category {category!r}: not an MMLU-ProX subject (language {language!r})") from None


def mmlu_prox_process_docs(dataset):
    """Adds each doc's per-language, per-subject description (the YAML's ``description`` field names it)."""
    return dataset.map(lambda doc: {DESCRIPTION_FIELD: mmlu_prox_description(doc["language"], doc["category"])})


def mmlu_prox_language_overrides(language: str) -> dict[str, Any]:
    """The parts of lm-eval's MMLU-ProX config that depend on the language.

    The answer regex ("Die Antwort ist (X)") and the stop sequences ("Frage:") come from the
    installed ``mmlu_prox/<language>/_<language>_template_yaml``.
    """
    _lang_utils(language)
    cfg = _builtin_config(language, f"_{language}_template_yaml")
    return {"filter_list": cfg["filter_list"], "generation_kwargs": cfg["generation_kwargs"]}
