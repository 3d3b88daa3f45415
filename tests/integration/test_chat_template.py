"""`saemerge evaluate` with the chat template equals lm-eval's CLI with --apply_chat_template, per
example, on a real instruct model (SmolLM2-135M-Instruct, tests/support/smollm2.py) and lm-eval's
own gsm8k YAML over local JSONL, at 0 shots (lm-eval would draw shots its own way)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from saemerge.cli import main
from saemerge.evaluate.results import EvalResult
from saemerge.evaluate.sampling import draw_test_set
from saemerge.evaluate.taskset import installed_tasks
from saemerge.runlog import read_table
from tests.support.owntasks import write_lm_eval_data, write_sidecar

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SYSTEM = "You are a careful math tutor. End with #### and the number."


def test_saemerge_evaluate_with_the_chat_template_equals_lm_evals_cli(smollm2, tmp_path, capsys):
    model = smollm2["base"]
    data = write_lm_eval_data(tmp_path / "data")
    task_dir = tmp_path / "tasks"
    write_sidecar(task_dir, "gsm8k", filter="flexible-extract")
    (task_dir / "saemerge.yaml").write_text(f"apply_chat_template: true\nsystem_instruction: {json.dumps(SYSTEM)}\n")
    sample = draw_test_set(["gsm8k"], 3, data=data, seed=0, out_dir=tmp_path / "sample", shots=0)["gsm8k"]
    rows = tmp_path / "rows.parquet"
    argv = ["evaluate", str(model), "--samples", f"gsm8k={sample}", "--tasks-dir", str(task_dir), "--device", "cpu"]
    argv += ["--dtype", "float32", "--batch-size", "1", "--max-gen-toks", "24", "--out", str(rows)]
    assert main(argv) == 0, capsys.readouterr().err
    ours = EvalResult.from_table(read_table(str(rows))).per_example

    inc = tmp_path / "inc"
    inc.mkdir()
    files = {"train": str(sample), "test": str(sample)}
    cfg = {"include": str(installed_tasks()["gsm8k"]), "task": "gsm8k_local", "dataset_path": "json"}
    (inc / "gsm8k_local.yaml").write_text(
        json.dumps({**cfg, "dataset_name": None, "dataset_kwargs": {"data_files": files}})
    )
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32"]
    cmd += ["--tasks", "gsm8k_local", "--include_path", str(inc), "--num_fewshot", "0", "--batch_size", "1"]
    cmd += ["--device", "cpu", "--gen_kwargs", "max_gen_toks=24", "--apply_chat_template"]
    cmd += ["--system_instruction", SYSTEM, "--log_samples", "--output_path", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=900)
    logged = [json.loads(line) for p in sorted(out.rglob("samples_gsm8k_local_*.jsonl")) for line in p.open()]
    cli = {s["doc_id"]: s for s in logged if s["filter"] == "flexible-extract"}
    prompt = json.dumps(cli[0]["arguments"], ensure_ascii=False)
    assert "<|im_start|>system" in prompt and SYSTEM in prompt  # the chat template was applied
    assert len(ours) == len(cli) == 3
    assert [(r.score, r.answer) for r in ours] == [
        (float(cli[i]["exact_match"]), cli[i]["filtered_resps"][0]) for i in range(3)
    ]
