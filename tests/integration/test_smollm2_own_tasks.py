"""A micro SAE run on a real instruct LLM (SmolLM2-135M-Instruct and two experts derived from it,
tests/support/smollm2.py) scored on a user's task directory with the chat template on: the task
directory (an lm-eval YAML of one's own over the bench's math data, a sidecar, and
``saemerge.yaml`` turning the chat template on) is published with ``saemerge upload --tasks``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from saemerge import runlog
from saemerge.runlog import RunLayout
from tests.integration.test_own_tasks_run import BENCH_MATH
from tests.support.owntasks import write_task

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _upload(*args) -> None:
    done = subprocess.run([sys.executable, "-m", "saemerge", "upload", *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_a_micro_sae_run_on_smollm2_with_a_task_directory_and_the_chat_template(s3_env, smollm2, micro_bench, tmp_path):
    bucket = "saemerge-test"
    models = f"s3://{bucket}/smollm2-own-{tmp_path.name}"
    for name, path in smollm2.items():
        _upload(path, f"{models}/{name}")
    task_dir = tmp_path / "tasks"
    write_task(task_dir, "chat_math", BENCH_MATH, data="math", metric="exact_match", filter="strict-match")
    (task_dir / "saemerge.yaml").write_text("apply_chat_template: true\nsystem_instruction: Answer briefly.\n")
    tasks_uri = f"s3://{bucket}/tasks/chat-{tmp_path.name}"
    _upload("--tasks", task_dir, tasks_uri)

    workdir = tmp_path / "work"
    (workdir / "bench").mkdir(parents=True)
    (workdir / "bench" / "micro-seed0").symlink_to(micro_bench)
    run_id = "smollm2-own-tasks"
    args = [
        *(sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(workdir)),
        *("--bench-size", "micro", "--steps", "1", "--bucket", bucket, "--run-id", run_id),
        *("--param", f"experts={json.dumps([f'{models}/expert_a', f'{models}/expert_b'])}"),
        *("--param", f"base_uri={models}/base", "--param", "archive_size=2", "--param", "baselines=[]"),
        *("--param", 'opt_sizes={"chat_math": 3}', "--param", 'test_sizes={"chat_math": 3}'),
        *("--param", f"tasks_uri={tasks_uri}"),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for method in ("base", "expert:expert_a", "expert:expert_b", "sae"):
        assert f"\n{method} " in done.stdout, done.stdout[-3000:]
    info = runlog.read_json(f"s3://{bucket}/runs/{run_id}/run.json")
    assert info["chat"] == {
        "apply_chat_template": True,
        "system_instruction": "Answer briefly.",
        "fewshot_as_multiturn": False,
    }
    assert info["tasks"]["chat_math"]["source"] == "user"
    results = RunLayout(f"s3://{bucket}/runs/{run_id}").read_results()
    assert {r["method"] for r in results} == {"base", "expert:expert_a", "expert:expert_b", "sae"}
    assert all(set(r["scores"]) == {"chat_math"} for r in results)
