"""A micro SAE run (`saemerge run --local`, kfp.local, the embedded store) whose base and experts
are a real pretrained LLM: SmolLM2-135M-Instruct and two experts derived from it
(tests/support/smollm2.py), published with `saemerge upload`. One generation, an archive of 2,
a handful of items per task. The run's models load in transformers with the head still tied.

The tasks and the chat settings of the run are :data:`TASK_PARAMS`, the one place to change them
(for example to a user task directory with the chat template on)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from saemerge import runlog, storage
from saemerge.objectstore import Store
from saemerge.runlog import RunLayout
from tests.support.smollm2 import chat_reply

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The run's tasks (here the bench's shipped ones, its data published by the run from the micro
# bench) and chat settings (none yet): `--param` arguments of `saemerge run`.
TASK_PARAMS = [
    "--param",
    'opt_sizes={"saebench_math": 2, "saebench_multilingual": 2}',
    "--param",
    'test_sizes={"saebench_math": 2, "saebench_multilingual": 2}',
]


BUCKET = "saemerge-test"


@pytest.fixture
def own_store(tmp_path, monkeypatch):
    """A store of this test's own, in os.environ with a fresh SAEMERGE_CACHE, deleted with the
    cache when the test ends: the run leaves about 6 GB in each (three inputs and nine models of
    538 MB), which the session's store and pytest's kept temporary directories would hold on to."""
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


def _upload(src, dest: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "saemerge", "upload", str(src), dest], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_a_micro_sae_run_on_smollm2(own_store, smollm2, micro_bench, tmp_path):
    bucket = BUCKET
    models = f"s3://{bucket}/smollm2-{tmp_path.name}"
    for name, path in smollm2.items():
        _upload(path, f"{models}/{name}")
    workdir = tmp_path / "work"
    (workdir / "bench").mkdir(parents=True)
    (workdir / "bench" / "micro-seed0").symlink_to(micro_bench)
    run_id = "smollm2-micro"
    args = [
        *(sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(workdir)),
        *("--bench-size", "micro", "--steps", "1", "--bucket", bucket, "--run-id", run_id),
        *("--param", f"experts={json.dumps([f'{models}/expert_a', f'{models}/expert_b'])}"),
        *("--param", f"base_uri={models}/base"),
        *("--param", "archive_size=2", "--param", "baselines=[]"),
        *TASK_PARAMS,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for method in ("base", "expert:expert_a", "expert:expert_b", "sae"):
        assert f"\n{method} " in done.stdout, done.stdout[-3000:]

    run_uri = f"s3://{bucket}/runs/{run_id}"
    layout = RunLayout(run_uri)
    for part in ("init/population.parquet", "gen-00/population.parquet", "final/results.parquet", "final/compute.json"):
        assert storage.exists(f"{run_uri}/{part}"), part
    population = layout.read_population(0)
    assert population
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
