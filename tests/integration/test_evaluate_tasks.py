"""The shipped task configs under real lm-eval, and the scoring path through a scripted model.

No checkpoint here: the scripted model (the ``scripted_lm`` fixture) stands at lm-eval's LM
seam, so prompt building, lm-eval's filters and metrics and our mapping back to example ids
are all real.
"""

from __future__ import annotations

from pathlib import Path

import lm_eval.tasks
import pytest
from lm_eval.tasks import TaskManager
from lm_eval.tasks._yaml_loader import load_yaml

from saemerge.errors import SaeMergeError
from saemerge.evaluate.evaluator import Evaluator, quiet_lm_eval
from saemerge.evaluate.overlay import write_overlays
from saemerge.evaluate.sampling import draw_test_set, sample_optimisation_set
from saemerge.evaluate.taskset import SIDECAR_SUFFIX, get_task, shipped_tasks
from saemerge.evaluate.taskspec import TASKS_DIR, read_jsonl, write_jsonl
from tests.support.fixtures import write_bench_data, write_real_data
from tests.support.scripted_lm import write_answer_key

pytestmark = pytest.mark.integration

LM_EVAL_TASKS = Path(lm_eval.tasks.__file__).parent
ALL = ["saebench_math", "saebench_multilingual", "gsm8k_sae", "mmlu_prox_sae"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """An optimisation set of the bench tasks and test subsets of the real ones."""
    root = tmp_path_factory.mktemp("evaldata")
    bench = write_bench_data(root / "bench")
    real = write_real_data(root / "real")
    out = sample_optimisation_set(
        ["saebench_math", "saebench_multilingual"], 12, data=bench, seed=1, generation=0, out_dir=root / "gen-00"
    )
    out |= draw_test_set(["gsm8k_sae", "mmlu_prox_sae"], {"mmlu_prox_sae": 9}, data=real, seed=1, out_dir=root / "test")
    return out


@pytest.fixture(scope="module")
def task_manager():
    quiet_lm_eval()
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


def _build(task_manager, spec_name, docs, workdir):
    tasks = {}
    for lm_task in write_overlays(get_task(spec_name), docs, workdir):
        task = task_manager.load([str(lm_task.yaml)])["tasks"][lm_task.name]
        task.build_all_requests()
        tasks[lm_task.name] = task
    return tasks


def test_every_shipped_yaml_is_indexed(task_manager):
    shipped = shipped_tasks()
    assert set(shipped) <= set(task_manager.all_subtasks)
    yamls = [p.stem for p in TASKS_DIR.glob("*.yaml") if not p.name.endswith(SIDECAR_SUFFIX)]
    assert sorted(yamls) == sorted(shipped) == sorted(ALL)
    assert all(s.source == "shipped" and s.sidecar is not None for s in shipped.values())


@pytest.mark.parametrize("name", ALL)
def test_task_loads_and_builds_one_request_set_per_doc(task_manager, samples, name, tmp_path):
    docs = read_jsonl(samples[name])
    tasks = _build(task_manager, name, docs, tmp_path)
    docs_seen = [inst.doc["id"] for t in tasks.values() for inst in t.instances]
    if name == "saebench_multilingual":  # one loglikelihood request per option
        assert len(docs_seen) == sum(len(d["options"]) for d in docs)
    else:
        assert sorted(docs_seen) == sorted(d["id"] for d in docs)
    for t in tasks.values():
        for inst in t.instances:
            assert inst.doc["question"] in inst.args[0]


def test_mmlu_prox_splits_by_language_with_its_regex_and_stop_word(task_manager, samples, tmp_path):
    docs = read_jsonl(samples["mmlu_prox_sae"])
    tasks = _build(task_manager, "mmlu_prox_sae", docs, tmp_path)
    assert sorted(tasks) == ["mmlu_prox_sae_de", "mmlu_prox_sae_en", "mmlu_prox_sae_zh"]
    de = tasks["mmlu_prox_sae_de"]
    assert "Frage:" in de.config.generation_kwargs["until"]
    assert de.config.filter_list[0]["filter"][0]["regex_pattern"].startswith("Die Antwort ist")
    assert de.instances[0].args[0].startswith("Im Folgenden sind Multiple-Choice-Fragen")


def _builtin(task_manager, yaml_path: Path, data_files: dict, **overrides):
    """lm-eval's own task config, pointed at local files instead of the hub."""
    cfg = load_yaml(yaml_path)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": data_files}, **overrides)
    task = next(iter(task_manager.load([cfg])["tasks"].values()))
    task.set_fewshot_seed(1234)
    task.build_all_requests()
    return task


def test_gsm8k_sae_prompt_equals_lm_eval_gsm8k(task_manager, tmp_path):
    # one shot from a one-row train split makes lm-eval's random sampler deterministic
    shot = {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"}
    doc = {"question": "What is 5 plus 6?", "answer": "5 + 6 = 11\n#### 11"}
    write_jsonl(tmp_path / "train.jsonl", [shot])
    write_jsonl(tmp_path / "test.jsonl", [doc])
    builtin = _builtin(
        task_manager,
        LM_EVAL_TASKS / "gsm8k" / "gsm8k.yaml",
        {"train": str(tmp_path / "train.jsonl"), "test": str(tmp_path / "test.jsonl")},
        num_fewshot=1,
    )
    ours = _build(task_manager, "gsm8k_sae", [{**doc, "id": "d", "fewshot": [shot]}], tmp_path / "ours")["gsm8k_sae"]
    assert ours.instances[0].args == builtin.instances[0].args  # prompt and generation settings
    assert ours.instances[0].args[0].startswith("Question: Tom has 3 apples")
    # the strict-match filter and exact_match settings are lm-eval's
    strict = next(f for f in builtin.config.filter_list if f["name"] == "strict-match")
    assert ours.config.filter_list == [strict]
    assert ours.config.metric_list == builtin.config.metric_list


def test_mmlu_prox_sae_prompt_equals_lm_eval_mmlu_prox(task_manager, tmp_path):
    real = write_real_data(tmp_path / "real", languages={"de": 2, "en": 1})
    val = read_jsonl(real / "mmlu_prox" / "validation.jsonl")
    test = read_jsonl(
        draw_test_set(["mmlu_prox_sae"], None, data=real, seed=0, out_dir=tmp_path / "s")["mmlu_prox_sae"]
    )
    doc = next(d for d in test if d["language"] == "de" and d["category"] == "math")
    assert len(doc["fewshot"]) == 5
    write_jsonl(tmp_path / "val.jsonl", [r for r in val if r["language"] == "de"])
    write_jsonl(tmp_path / "test.jsonl", [{k: v for k, v in doc.items() if k not in ("id", "fewshot")}])
    builtin = _builtin(
        task_manager,
        LM_EVAL_TASKS / "mmlu_prox" / "de" / "mmlu_prox_de_math.yaml",
        {"validation": str(tmp_path / "val.jsonl"), "test": str(tmp_path / "test.jsonl")},
    )
    ours = _build(task_manager, "mmlu_prox_sae", [doc], tmp_path / "ours")["mmlu_prox_sae_de"]
    assert ours.instances[0].args == builtin.instances[0].args
    assert ours.config.filter_list == builtin.config.filter_list
    assert ours.config.metric_list == builtin.config.metric_list


@pytest.fixture(scope="module")
def answer_key(samples, tmp_path_factory):
    return write_answer_key(samples, tmp_path_factory.mktemp("key"))


@pytest.mark.parametrize(("mode", "expected"), [("right", 1.0), ("wrong", 0.0)])
def test_scripted_model_scores_exactly(scripted_lm, samples, answer_key, mode, expected):
    with Evaluator(ALL, model=scripted_lm, model_args={"mode": mode}) as ev:
        res = ev.score(answer_key, samples)
    assert res.per_task == {t: expected for t in ALL}
    assert res.macro == expected
    sample_ids = [(t, d["id"]) for t in ALL for d in read_jsonl(samples[t])]
    assert [(r.task, r.example_id) for r in res.per_example] == sample_ids  # one row per example, in order
    for r in res.per_example:
        assert (r.answer == r.target) == (mode == "right"), r
    table = res.to_table()
    assert table.num_rows == len(sample_ids)


def test_already_scored_examples_are_not_evaluated_again(scripted_lm, samples, answer_key):
    with Evaluator(ALL, model=scripted_lm) as ev:
        first = ev.score(answer_key, {t: samples[t] for t in ALL}, limit=4)
        assert (first.stats["evaluated"], first.stats["cached"]) == (16, 0)
        # a stale row for an already-seen example is returned as it was, proving it was not re-run
        seen = [
            r
            if r.example_id != first.per_example[0].example_id
            else type(r)(r.task, r.example_id, False, "stale", r.target)
            for r in first.per_example
        ]
        second = ev.score(answer_key, samples, already_scored=seen)
    total = sum(len(read_jsonl(samples[t])) for t in ALL)
    assert second.stats["evaluated"] == total - 16 and second.stats["cached"] == 16
    assert second.per_example[0].answer == "stale"
    assert len(second.per_example) == total


def test_bad_samples_are_one_line_errors(scripted_lm, samples, answer_key, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with Evaluator(["saebench_math"], model=scripted_lm) as ev:
        with pytest.raises(SaeMergeError, match="empty.jsonl: no examples for task saebench_math"):
            ev.score(answer_key, {"saebench_math": empty})
        with pytest.raises(SaeMergeError, match="task saebench_maths is not one of this evaluator's tasks"):
            ev.score(answer_key, {"saebench_maths": samples["saebench_math"]})
        with pytest.raises(SaeMergeError, match="not one of this evaluator's tasks"):
            ev.score(answer_key, {"gsm8k_sae": samples["gsm8k_sae"]})
        with pytest.raises(SaeMergeError, match="no task samples"):
            ev.score(answer_key, {})
    with pytest.raises(SaeMergeError, match="unknown task 'mmlu_prox'"):
        Evaluator(["mmlu_prox"])
    typo = scripted_lm[:-1]
    with Evaluator(["saebench_math"], model=typo) as ev:
        with pytest.raises(SaeMergeError, match=f"unknown lm-eval model '{typo}'; did you mean '{scripted_lm}'"):
            ev.score(answer_key, {"saebench_math": samples["saebench_math"]})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("category", "astrology", "category 'astrology': not an MMLU-ProX subject"),
        ("language", "xx", "unknown MMLU-ProX language 'xx'"),
    ],
)
def test_mmlu_prox_doc_with_unknown_subject_or_language(scripted_lm, samples, tmp_path, field, value, message):
    docs = read_jsonl(samples["mmlu_prox_sae"])
    docs[0][field] = value
    bad = write_jsonl(tmp_path / "bad.jsonl", docs)
    key = write_answer_key({"mmlu_prox_sae": bad}, tmp_path / "key")
    with Evaluator(["mmlu_prox_sae"], model=scripted_lm) as ev:
        with pytest.raises(SaeMergeError, match=message):
            ev.score(key, {"mmlu_prox_sae": bad})
