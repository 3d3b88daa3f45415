"""A micro SAE run on a real instruct LLM (SmolLM2-135M-Instruct and two experts derived from it,
tests/support/smollm2.py), published with ``saemerge upload``, scored on a user's task directory
with the chat template on: the task directory (an lm-eval YAML of one's own over the bench's math
data, a sidecar, and ``saemerge.yaml`` turning the chat template on) is published with
``saemerge upload --tasks``. One generation, an archive of 2, three items. The run's pick loads in
transformers with the head still tied to the embedding and answers in the chat template."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from saemerge import runlog, storage
from saemerge.runlog import RunLayout
from saemerge.s3server.server import Store
from tests.integration.test_own_tasks_run import BENCH_MATH
from tests.support.owntasks import write_task
from tests.support.smollm2 import chat_reply

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "saemerge-test"


@pytest.fixture
def own_store(tmp_path, monkeypatch):
    """A store of this test's own, in os.environ with a fresh SAEMERGE_CACHE, deleted with the
    cache when the test ends: the run leaves about 6 GB in each (three inputs and the models, of
    538 MB each), which the session's store and pytest's kept temporary directories would hold on to."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    cache = tmp_path / "saemerge-cache"
    monkeypatch.setenv("SAEMERGE_CACHE", str(cache))
    try:
        with Store(tmp_path / "store", buckets=[BUCKET]) as store:
            for key, value in store.env().items():
                monkeypatch.setenv(key, value)
            yield store
    finally:
        for path in (tmp_path / "store", cache, tmp_path / "work"):
            shutil.rmtree(path, ignore_errors=True)


def _upload(*args) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "saemerge", "upload", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_a_micro_sae_run_on_smollm2_with_a_task_directory_and_the_chat_template(
    own_store, smollm2, micro_bench, tmp_path
):
    models = f"s3://{BUCKET}/smollm2-own-{tmp_path.name}"
    for name, path in smollm2.items():
        _upload(path, f"{models}/{name}")
    task_dir = tmp_path / "tasks"
    write_task(task_dir, "chat_math", BENCH_MATH, data="math", metric="exact_match", filter="strict-match")
    (task_dir / "saemerge.yaml").write_text("apply_chat_template: true\nsystem_instruction: Answer briefly.\n")
    tasks_uri = f"s3://{BUCKET}/tasks/chat-{tmp_path.name}"
    _upload("--tasks", task_dir, tasks_uri)

    workdir = tmp_path / "work"
    (workdir / "bench").mkdir(parents=True)
    (workdir / "bench" / "micro-seed0").symlink_to(micro_bench)
    run_id = "smollm2-own-tasks"
    args = [
        *(sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(workdir)),
        *("--bench-size", "micro", "--steps", "1", "--bucket", BUCKET, "--run-id", run_id),
        *("--param", f"experts={json.dumps([f'{models}/expert_a', f'{models}/expert_b'])}"),
        *("--param", f"base_uri={models}/base", "--param", "archive_size=2", "--param", "baselines=[]"),
        *("--param", 'opt_sizes={"chat_math": 3}', "--param", 'test_sizes={"chat_math": 3}'),
        *("--param", f"tasks_uri={tasks_uri}"),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for method in ("base", "expert:expert_a", "expert:expert_b", "sae"):
        assert f"\n{method} " in done.stdout, done.stdout[-3000:]

    run_uri = f"s3://{BUCKET}/runs/{run_id}"
    info = runlog.read_json(f"{run_uri}/run.json")
    assert info["chat"] == {
        "apply_chat_template": True,
        "system_instruction": "Answer briefly.",
        "fewshot_as_multiturn": False,
    }
    assert info["tasks"]["chat_math"]["source"] == "user"
    layout = RunLayout(run_uri)
    for part in ("init/population.parquet", "gen-00/population.parquet", "final/results.parquet", "final/compute.json"):
        assert storage.exists(f"{run_uri}/{part}"), part
    assert layout.read_population(0)
    results = layout.read_results()
    assert {r["method"] for r in results} == {"base", "expert:expert_a", "expert:expert_b", "sae"}
    assert all(set(r["scores"]) == {"chat_math"} for r in results)

    best = runlog.read_json(layout.final("best.json"))
    with storage.local_input(best["uri"]) as model_dir:
        config = json.loads((model_dir / "config.json").read_text())
        assert config["tie_word_embeddings"] is True and config["num_hidden_layers"] == 30
        from safetensors import safe_open

        for f in model_dir.glob("*.safetensors"):
            with safe_open(str(f), "pt") as h:
                assert "lm_head.weight" not in h.keys()
        reply = chat_reply(model_dir, "What is the capital of France?")  # raises if the head is untied
        assert sum(c.isalpha() for c in reply) > 10, reply
