"""A command's output is its own: warnings and errors always reach stderr, INFO only with -v,
except the progress of a verb's long phases; `run --local` still prints each generation."""

from __future__ import annotations

import subprocess
import sys
import time
import types

from saemerge.runlog import RunLayout, write_json

LOG_EVERYTHING = """
import logging, sys
from saemerge.cli import setup_logging
setup_logging(int(sys.argv[1]), sys.argv[2])
logging.getLogger("botocore.credentials").setLevel(logging.INFO)  # as saemerge.storage.s3_conn leaves it
logging.getLogger("botocore.credentials").info("Found credentials in environment variables.")
logging.getLogger("saemerge.storage.s3").info("using cached copy of s3://b/m")
logging.getLogger("saemerge.bench.build").info("bench build: tokenizer done in 3.0 s")
logging.getLogger("saemerge.pipeline.local").info("using the S3 endpoint from the environment")
logging.getLogger("saemerge.ops.prune").debug("tensor 3 of 9")
logging.getLogger("saemerge.storage.s3").warning("cache budget exceeded")
logging.getLogger("botocore").error("connection refused")
print("the command's own output")
"""


def _stderr(verbose: int, verb: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", LOG_EVERYTHING, str(verbose), verb], capture_output=True, text=True, check=True
    )
    return done.stdout, done.stderr


def test_without_v_only_warnings_errors_and_the_verbs_progress_show():
    out, err = _stderr(0, "inspect")
    assert out == "the command's own output\n"
    assert "Found credentials" not in err and "cached copy" not in err and "bench build" not in err
    assert "WARNING saemerge.storage.s3: cache budget exceeded" in err
    assert "ERROR botocore: connection refused" in err
    _, err = _stderr(0, "run")  # run --local builds the bench once (minutes): its phases show
    assert "bench build: tokenizer done" in err and "using the S3 endpoint" in err
    assert "Found credentials" not in err and "cached copy" not in err


def test_v_shows_info_and_vv_debug_but_never_botocores_debug():
    _, err = _stderr(1, "inspect")
    assert "INFO botocore.credentials: Found credentials" in err and "INFO saemerge.storage.s3: using cached" in err
    assert "tensor 3 of 9" not in err
    _, err = _stderr(2, "inspect")
    assert "DEBUG saemerge.ops.prune: tensor 3 of 9" in err


def test_a_verb_prints_its_result_and_no_info_lines(tiny_family, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "saemerge",
        "sparsity",
        str(tiny_family["expert0"]),
        "--base",
        str(tiny_family["base"]),
    ]
    quiet = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert quiet.stdout.strip() and " INFO " not in quiet.stderr, quiet.stderr
    out = tmp_path / "pruned"
    prune = [sys.executable, "-m", "saemerge", "prune", str(tiny_family["expert0"]), "--sparsity", "0.5"]
    prune += ["--base", str(tiny_family["base"]), "--out", str(out)]
    assert " INFO " not in subprocess.run(prune, capture_output=True, text=True, check=True).stderr
    loud = subprocess.run([*prune[:3], "-v", *prune[3:-1], str(tmp_path / "p2")], capture_output=True, text=True)
    assert loud.returncode == 0 and "INFO saemerge.ops.prune: pruning" in loud.stderr, loud.stderr


def test_run_local_prints_each_generation_on_stdout(tmp_path, capsys):
    from saemerge.pipeline.local import Phases, _follow

    layout = RunLayout(str(tmp_path / "run"))
    metrics = {"best_fitness": 0.5, "mean_fitness": 0.4, "mean_sparsity": 0.2, "accepted": 1, "offspring": 4}
    write_json(layout.metrics("init"), {**metrics, "generation": -1, "s_t": 0.0, "best.saebench_math": 0.3})
    write_json(layout.metrics(0), {**metrics, "generation": 0, "s_t": 0.1, "best.saebench_math": 0.35})
    run = types.SimpleNamespace(run_uri=layout.root, run_dir=tmp_path, run_id="r")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    lease = types.SimpleNamespace(heartbeat=lambda: None)
    _follow(run, 1, proc, Phases(), time.perf_counter(), lease, 0)
    out = capsys.readouterr().out
    assert "initial population" in out and "generation  0 (s_t=0.1000)" in out
    assert "best fitness 0.5000  mean 0.4000  [saebench_math 0.350]  mean ρ 0.200  accepted 1/4" in out
