"""A user's task directory, published to the embedded store, used by a micro SAE run end to end."""

import os
import shutil
import subprocess
import sys

import pytest

from saemerge import runlog, storage
from saemerge.cli import main
from saemerge.runlog import RunLayout
from tests.support.owntasks import write_task

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# a task of one's own over the bench's math data: lm-eval's gsm8k answer extraction, its own prompt
BENCH_MATH = {
    "dataset_path": "json",
    "output_type": "generate_until",
    "test_split": "test",
    "doc_to_text": "Question: {{question}}\nAnswer:",
    "doc_to_target": "{{answer}}",
    "target_delimiter": " ",
    "generation_kwargs": {"until": ["\n\n", "Question:"], "do_sample": False, "max_gen_toks": 32},
    "filter_list": [
        {
            "name": "strict-match",
            "filter": [{"function": "regex", "regex_pattern": "#### (\\-?[0-9\\.\\,]+)"}, {"function": "take_first"}],
        }
    ],
    "metric_list": [
        {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True, "regexes_to_ignore": ["(?s).*#### "]}
    ],
}


def test_a_micro_sae_run_on_an_uploaded_task_directory(s3_env, micro_bench, tmp_path, capsys):
    task_dir = tmp_path / "tasks"
    write_task(task_dir, "my_math", BENCH_MATH, data="math", metric="exact_match", filter="strict-match", weight=2)
    bucket = "saemerge-test"
    tasks_uri = f"s3://{bucket}/tasks/my-tasks-{os.getpid()}"
    assert main(["upload", "--tasks", str(task_dir), tasks_uri, "--create-bucket"]) == 0
    assert "published" in capsys.readouterr().out

    workdir = tmp_path / "work"
    shutil.copytree(micro_bench, workdir / "bench" / "micro-seed0")
    run_id = f"owntasks-{os.getpid()}"
    args = [sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(workdir), "--bench-size", "micro"]
    args += ["--steps", "1", "--bucket", bucket, "--run-id", run_id, "--param", "archive_size=4"]
    args += ["--param", 'opt_sizes={"my_math": 6, "saebench_multilingual": 6}']
    args += ["--param", 'test_sizes={"my_math": 8, "saebench_multilingual": 8}', "--param", f"tasks_uri={tasks_uri}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    run_uri = f"s3://{bucket}/runs/{run_id}"
    info = runlog.read_json(f"{run_uri}/run.json")
    assert info["config"]["tasks_uri"] == tasks_uri
    assert info["tasks"]["my_math"]["source"] == "user" and info["tasks"]["my_math"]["weight"] == 2.0
    assert info["tasks"]["my_math"]["yaml"] == "tasks_uri:my_math.yaml"
    assert info["tasks"]["saebench_multilingual"]["source"] == "shipped"
    assert info["chat"]["apply_chat_template"] is False and info["task_code"] == {}
    assert len(info["evaluator_identity"]) == 16
    gen0 = RunLayout(run_uri).read_population(0)
    for record in gen0:  # fitness: the weighted mean (2:1) plus gamma * rho
        s = record["scores"]
        assert record["score"] == pytest.approx((2 * s["my_math"] + s["saebench_multilingual"]) / 3)
    results = RunLayout(run_uri).read_results()
    assert {r["method"] for r in results} >= {"base", "sae"}
    for r in results:  # the results table's macro is the same weighted mean
        assert set(r["scores"]) == {"my_math", "saebench_multilingual"}
        assert r["macro"] == pytest.approx((2 * r["scores"]["my_math"] + r["scores"]["saebench_multilingual"]) / 3)
    scores = runlog.read_table(f"{run_uri}/final/scores.parquet")
    assert "score" in scores.column_names and set(scores.column("task").to_pylist()) == {
        "my_math",
        "saebench_multilingual",
    }
    assert storage.exists(f"{run_uri}/final/report.md")
