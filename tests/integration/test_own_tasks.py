"""Tasks as inputs on lm-eval's own shipped YAMLs, with local JSONL fixtures, offline (issue 30 §7).

The model is the tiny real checkpoint of tests/support (2 layers, byte-level BPE): its answers are
nonsense, but lm-eval's prompts, requests, filters and metrics are all real, so the per-example
rows can be compared with lm-eval's own command line on the same model and data.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from saemerge.errors import SaeMergeError
from saemerge.evaluate.evaluator import Evaluator
from saemerge.evaluate.sampling import draw_test_set
from saemerge.evaluate.taskcheck import build_tasks
from saemerge.evaluate.tasksafety import check_task_safety
from saemerge.evaluate.taskset import installed_tasks, resolve_tasks
from saemerge.evaluate.taskspec import load_split, read_jsonl
from tests.support.owntasks import hellaswag_copy, write_lm_eval_data, write_sidecar

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_lm_eval_data(tmp_path_factory.mktemp("lmdata"))


def _score(tasks, model, data, out, **kwargs):
    samples = draw_test_set(tasks, None, data=data, seed=0, out_dir=out, shots=0)
    with Evaluator(tasks, device="cpu", dtype="float32", batch_size=1, **kwargs) as ev:
        return ev.score(model, samples), samples


def _few_rows(tasks, data):
    rows = {s.name: (load_split(s, data, "test") or [])[:3] for s in tasks}
    return rows, {s.name: [] for s in tasks}


def test_gsm8k_rows_are_lm_evals_own_at_zero_shots(tiny_family, data, tmp_path):
    """saemerge on the installed gsm8k == `python -m lm_eval` on the same YAML, model and data."""
    model = tiny_family["base"]
    tasks = resolve_tasks(["gsm8k"])
    assert tasks["gsm8k"].source == "lm_eval"
    assert (tasks["gsm8k"].metric, tasks["gsm8k"].filter) == ("exact_match", "strict-match")
    result, samples = _score(tasks, model, data, tmp_path / "s", max_gen_toks=16)
    docs = read_jsonl(samples["gsm8k"])
    assert [r.example_id for r in result.per_example] == [d["id"] for d in docs]

    # lm-eval's CLI: its gsm8k YAML pointed at the same rows, 0 shots (its train split, which
    # only its few-shot sampler reads, is the same file: one schema for both splits)
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "gsm8k_local.yaml").write_text(
        json.dumps(
            {
                "include": str(installed_tasks()["gsm8k"]),
                "task": "gsm8k_local",
                "dataset_path": "json",
                "dataset_name": None,
                "dataset_kwargs": {"data_files": {"train": str(samples["gsm8k"]), "test": str(samples["gsm8k"])}},
            }
        )
    )
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf"]
    cmd += ["--model_args", f"pretrained={model},dtype=float32", "--tasks", "gsm8k_local"]
    cmd += ["--include_path", str(inc), "--num_fewshot", "0", "--batch_size", "1", "--device", "cpu"]
    cmd += ["--gen_kwargs", "max_gen_toks=16", "--log_samples", "--output_path", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    logged = [json.loads(line) for p in sorted(out.rglob("samples_gsm8k_local_*.jsonl")) for line in p.open()]
    for filt, rows in (("strict-match", result.per_example), ("flexible-extract", None)):
        if rows is None:  # the same task scored under its other filter (a sidecar choosing it)
            write_sidecar(tmp_path / "tasks", "gsm8k", filter=filt)
            again = resolve_tasks(["gsm8k"], tmp_path / "tasks")
            with Evaluator(again, device="cpu", dtype="float32", batch_size=1, max_gen_toks=16) as ev:
                rows = ev.score(model, samples).per_example
        cli = {s["doc_id"]: s for s in logged if s["filter"] == filt}
        assert len(cli) == len(docs) == len(rows)
        assert [(r.score, r.answer) for r in rows] == [
            (float(cli[i]["exact_match"]), cli[i]["filtered_resps"][0]) for i in range(len(docs))
        ]
    assert any(r.answer != "[invalid]" for r in rows)  # flexible-extract finds numbers: a real comparison


@pytest.mark.parametrize("metric", ["acc", "acc_norm"])
def test_arc_easy_scores_with_acc_or_acc_norm(tiny_family, data, tmp_path, metric):
    task_dir = tmp_path / "tasks"
    write_sidecar(task_dir, "arc_easy", metric=metric)  # configures the installed arc_easy
    tasks = resolve_tasks(["arc_easy"], task_dir)
    assert tasks["arc_easy"].source == "lm_eval" and tasks["arc_easy"].metric == metric
    result, _ = _score(tasks, tiny_family["base"], data, tmp_path / "s")
    assert len(result.per_example) == 5
    assert all(r.score in (0.0, 1.0) and r.correct == (r.score == 1.0) for r in result.per_example)
    assert all(r.answer in {"A", "B", "C", "D"} or r.answer for r in result.per_example)


def test_a_pair_of_mgsm_direct_languages_through_split_by(tiny_family, data, tmp_path):
    task_dir = tmp_path / "tasks"
    write_sidecar(
        task_dir,
        "mgsm_pair",
        data="mgsm",
        pool_splits=["train"],
        split_by="lang",
        split_tasks="mgsm_direct_{value}",
        metric="exact_match",
        filter="flexible-extract",
        required=["question", "answer_number", "lang"],
    )
    tasks = resolve_tasks(["mgsm_pair"], task_dir)
    build_tasks(tasks, *_few_rows(tasks, data))
    result, samples = _score(tasks, tiny_family["base"], data, tmp_path / "s", max_gen_toks=8)
    assert len(result.per_example) == 6 and {r.task for r in result.per_example} == {"mgsm_pair"}
    assert {d["lang"] for d in read_jsonl(samples["mgsm_pair"])} == {"de", "fr"}


def test_hellaswag_its_installed_function_runs_a_copy_needs_the_opt_in(tiny_family, data, tmp_path):
    installed = resolve_tasks(["hellaswag"])
    assert check_task_safety(installed) == {}  # utils.process_docs of the installed lm-eval
    result, _ = _score(installed, tiny_family["base"], data, tmp_path / "s1")
    assert len(result.per_example) == 4

    copy = hellaswag_copy(tmp_path / "tasks")
    tasks = resolve_tasks(["my_hellaswag"], copy)
    with pytest.raises(SaeMergeError, match=r"utils\.py: a Python file in the task directory.*task_code") as err:
        check_task_safety(tasks)
    assert "\n" not in str(err.value)
    code = check_task_safety(tasks, allow_code=True)
    assert list(code["my_hellaswag"]) == [str((copy / "utils.py").resolve())]
    result, _ = _score(tasks, tiny_family["base"], data, tmp_path / "s2", allow_task_code=True)
    assert len(result.per_example) == 4


def test_a_loglikelihood_task_is_accepted_and_wikitext_refused(tiny_family, data, tmp_path):
    task_dir = tmp_path / "tasks"
    write_sidecar(task_dir, "lambada_openai", metric="acc")  # its first metric is perplexity
    tasks = resolve_tasks(["lambada_openai"], task_dir)
    build_tasks(tasks, *_few_rows(tasks, data))
    result, _ = _score(tasks, tiny_family["base"], data, tmp_path / "s")
    assert len(result.per_example) == 4 and all(r.score in (0.0, 1.0) for r in result.per_example)

    wiki = resolve_tasks(["wikitext"])
    with pytest.raises(
        SaeMergeError, match=r"task wikitext .*metric word_perplexity aggregates by .*not a per-example mean"
    ):
        build_tasks(wiki, *_few_rows(wiki, data))
    refused = resolve_tasks(["lambada_openai"])  # the default sidecar: its first metric, perplexity
    with pytest.raises(SaeMergeError, match="metric perplexity aggregates by"):
        build_tasks(refused, *_few_rows(refused, data))
