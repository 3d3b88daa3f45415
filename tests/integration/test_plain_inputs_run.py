"""A whole `saemerge run --local` (micro bench, one generation) whose experts and base are plain
HF checkpoints in the embedded store: no manifest.json, uploaded object by object. The run also
shows, under kfp.local, that Model artifacts stay where the launcher put them (pointer files)
and that the pipeline returns its best model."""

import json
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard

from saemerge import runlog, storage
from saemerge.runlog import RunLayout
from tests.support.s3plain import put_plain

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_micro_run_on_plain_experts_and_base(s3_env, micro_bench, tmp_path):
    bucket = "saemerge-test"
    plain = f"s3://{bucket}/plain-{tmp_path.name}"
    for name in ("base", "math", "multilingual"):
        put_plain(micro_bench / "models" / name, f"{plain}/{name}")
        assert storage.read_manifest(f"{plain}/{name}") is None
    workdir = tmp_path / "work"
    (workdir / "bench").mkdir(parents=True)
    (workdir / "bench" / "micro-seed0").symlink_to(micro_bench)  # the bench's data (published by the run)
    run_id = "plain-inputs"
    args = [
        sys.executable,
        "-m",
        "saemerge",
        "run",
        "--local",
        "--workdir",
        str(workdir),
        "--bench-size",
        "micro",
        "--steps",
        "1",
        "--bucket",
        bucket,
        "--run-id",
        run_id,
        "--param",
        f"experts={json.dumps([f'{plain}/math', f'{plain}/multilingual'])}",
        "--param",
        f"base_uri={plain}/base",
        "--param",
        "archive_size=2",
        "--param",
        "baselines=[]",
        "--param",
        'opt_sizes={"saebench_math": 4, "saebench_multilingual": 4}',
        "--param",
        'test_sizes={"saebench_math": 4, "saebench_multilingual": 4}',
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for method in ("base", "expert:math", "expert:multilingual", "sae"):
        assert f"\n{method} " in done.stdout

    run_uri = f"s3://{bucket}/runs/{run_id}"
    layout = RunLayout(run_uri)
    inputs = [runlog.read_json(u) for u in storage.list_uris(f"{run_uri}/inputs")]
    assert {i["uri"] for i in inputs} == {f"{plain}/base", f"{plain}/math", f"{plain}/multilingual"}
    assert {i["kind"] for i in inputs} == {"plain"}
    best = runlog.read_json(layout.final("best.json"))
    with storage.local_input(best["uri"]) as model_dir:
        assert ModelCard.load(model_dir / "README.md").data.base_model == f"{plain}/base"
    # kfp.local kept every Model artifact where its launcher put it (under the local pipeline
    # root), holding a pointer to the checkpoint; the pipeline's best_model points at the best
    root = workdir / "runs" / run_id / "kfp-root"
    pointers = {p: json.loads(p.read_text()) for p in root.rglob("*") if p.name in ("model", "child", "best_model")}
    assert pointers and all(set(v) == {"uri", "content_hash", "id"} for v in pointers.values())
    assert all(storage.exists(v["uri"]) for v in pointers.values())
    (best_pointer,) = [v for p, v in pointers.items() if p.name == "best_model"]
    assert best_pointer == {"uri": best["uri"], "content_hash": best["content_hash"], "id": best["id"]}
