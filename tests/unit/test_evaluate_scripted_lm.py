"""The scripted model sits at lm-eval's LM seam: its methods must match HFLM's; the evaluator's
hook for extra lm-eval models."""

from __future__ import annotations

import inspect

import pytest
from lm_eval.api.model import LM
from lm_eval.models.huggingface import HFLM

from saemerge.errors import SaeMergeError
from saemerge.evaluate.evaluator import register_model
from tests.support.scripted_lm import ScriptedLM, gold_answer


@pytest.mark.parametrize("method", ["generate_until", "loglikelihood", "loglikelihood_rolling"])
def test_fake_request_methods_match_hflm(method):
    fake = inspect.signature(getattr(ScriptedLM, method))
    real = inspect.signature(getattr(HFLM, method))
    assert [(p.name, p.kind, p.default) for p in fake.parameters.values()] == [
        (p.name, p.kind, p.default) for p in real.parameters.values()
    ]


def test_fake_is_a_concrete_lm():
    assert issubclass(ScriptedLM, LM)
    assert not inspect.isabstract(ScriptedLM)


def test_fake_constructor_takes_what_lm_eval_passes():
    # lm-eval builds models as cls(pretrained=..., **model_args, batch_size=..., device=...)
    params = inspect.signature(ScriptedLM.__init__).parameters
    assert {"pretrained", "batch_size", "device"} <= set(params)


def test_gold_answer_forms():
    assert gold_answer({"answer": "3 + 4 = 7\n#### 7"}) == "7"
    assert gold_answer({"answer": "x\n#### 1,200"}) == "1200"
    assert gold_answer({"answer": "C", "answer_index": 2, "options": ["a", "b", "c"]}) == "C"


def test_register_model_refuses_to_rebind_a_name():
    register_model("scripted-test-only", ScriptedLM)
    register_model("scripted-test-only", ScriptedLM)  # the same class again: fine
    with pytest.raises(SaeMergeError, match="already registered"):
        register_model("scripted-test-only", HFLM)
    with pytest.raises(SaeMergeError, match="already registered"):
        register_model("hf", ScriptedLM)
