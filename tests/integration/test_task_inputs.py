"""A user's task directory as an input: bad input in one line, what may run, what the identity covers.

No model: the task set is resolved, checked and built (preflight's work) on local JSONL rows.
"""

from __future__ import annotations

import shutil

import pytest

from saemerge.cli import main
from saemerge.errors import SaeMergeError
from saemerge.evaluate.taskcheck import build_tasks
from saemerge.evaluate.tasksafety import check_task_safety
from saemerge.evaluate.taskset import resolve_tasks
from saemerge.evaluate.taskspec import load_split, write_jsonl
from saemerge.steps.evaluation import cache_identity
from tests.support.owntasks import MY_MATH, write_lm_eval_data, write_sidecar, write_task

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_lm_eval_data(tmp_path_factory.mktemp("lmdata"))


@pytest.fixture
def task_dir(tmp_path):
    d = tmp_path / "tasks"
    write_task(d, "my_math", MY_MATH, data="gsm8k", pool_splits=["train"], metric="exact_match", filter="first")
    return d


def _build(tasks, data):
    rows = {s.name: (load_split(s, data, "test") or [])[:3] for s in tasks}
    build_tasks(tasks, rows, {s.name: [] for s in tasks})


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_a_task_of_ones_own_builds_and_its_sidecar_is_read(task_dir, data):
    tasks = resolve_tasks(["my_math", "saebench_math"], task_dir)
    spec = tasks["my_math"]
    assert (spec.source, spec.data, spec.pool_splits, spec.metric, spec.filter) == (
        "user",
        "gsm8k",
        ("train",),
        "exact_match",
        "first",
    )
    assert tasks["saebench_math"].source == "shipped"
    check_task_safety(tasks)
    _build(resolve_tasks(["my_math"], task_dir), data)
    assert tasks.record()["my_math"]["yaml"] == "tasks_uri:my_math.yaml"


# -- bad input: one line naming the input ----------------------------------------------------------
def test_an_unknown_task_suggests_the_closest(task_dir):
    with pytest.raises(SaeMergeError, match=r"unknown task 'my_maths'; did you mean 'my_math'") as err:
        resolve_tasks(["my_maths"], task_dir)
    _one_line(err)


def test_a_task_without_sidecar(task_dir):
    (task_dir / "my_math.saemerge.yaml").unlink()
    with pytest.raises(SaeMergeError, match=r"my_math\.yaml: task my_math has no sidecar my_math\.saemerge\.yaml"):
        resolve_tasks(["my_math"], task_dir)


def test_a_sidecar_naming_a_split_the_data_lacks(task_dir, data):
    from saemerge.preflight import _check_data, _Source

    write_sidecar(task_dir, "my_math", data="gsm8k", pool_splits=["validation"], metric="exact_match", filter="first")
    tasks = resolve_tasks(["my_math"], task_dir)
    with pytest.raises(SaeMergeError, match=r"task my_math has none of gsm8k/validation\.jsonl") as err:
        _check_data(_Source.open(str(data), "data_uri"), {"my_math": 2}, {"my_math": 2}, None, tasks)
    _one_line(err)
    write_sidecar(task_dir, "my_math", data="gsm8k", pool_splits=["test"])
    with pytest.raises(SaeMergeError, match="pool_splits may not name test"):
        resolve_tasks(["my_math"], task_dir)


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ({"metric": "f1"}, r"unknown metric in task my_math \(.*my_math\.saemerge\.yaml\): 'f1'"),
        ({"metric": "exact_match", "filter": "strict"}, r"unknown filter in task my_math .*'strict'.*known: first"),
    ],
)
def test_a_metric_or_filter_the_yaml_lacks(task_dir, data, sidecar, message):
    write_sidecar(task_dir, "my_math", data="gsm8k", pool_splits=["train"], **sidecar)
    with pytest.raises(SaeMergeError, match=message) as err:
        _build(resolve_tasks(["my_math"], task_dir), data)
    _one_line(err)


def test_two_tasks_with_one_name_and_clashes(task_dir):
    sub = task_dir / "again"
    sub.mkdir()
    shutil.copy(task_dir / "my_math.yaml", sub / "my_math.yaml")
    with pytest.raises(SaeMergeError, match="task my_math is defined twice"):
        resolve_tasks(["my_math"], task_dir)
    shutil.rmtree(sub)
    write_task(task_dir, "saebench_math", MY_MATH, data="gsm8k")
    with pytest.raises(SaeMergeError, match="task saebench_math clashes with a task shipped with saemerge"):
        resolve_tasks(["my_math"], task_dir)
    (task_dir / "saebench_math.yaml").unlink()
    (task_dir / "saebench_math.saemerge.yaml").unlink()
    write_task(task_dir, "gsm8k", MY_MATH, data="gsm8k")
    with pytest.raises(SaeMergeError, match="task gsm8k clashes with an installed lm-eval task"):
        resolve_tasks(["my_math"], task_dir)


def test_the_cli_refuses_bad_tasks_in_one_line_exit_2(tiny_family, task_dir, data, capsys, tmp_path):
    out = tmp_path / "out.parquet"
    argv = ["evaluate", str(tiny_family["base"]), "--data", str(data), "--tasks-dir", str(task_dir)]
    assert main([*argv, "--tasks", "my_mat", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'my_mat'; did you mean 'my_math'" in err and err.count("\n") == 1
    (task_dir / "evil.py").write_text("import os\n")
    assert main([*argv, "--tasks", "my_math", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "evil.py: a Python file in the task directory" in err and err.count("\n") == 1
    assert not out.exists()


# -- safety ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"doc_to_text": "{{ lipsum.__globals__['os'].getcwd() }}"}, "a template reaches outside the sandbox"),
        ({"doc_to_text": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}, "outside the sandbox"),
    ],
)
def test_a_template_reaching_for_globals_fails_naming_task_and_file(task_dir, data, change, message):
    write_task(task_dir, "my_math", {**MY_MATH, **change}, data="gsm8k", pool_splits=["train"], filter="first")
    with pytest.raises(SaeMergeError, match=rf"task my_math \(.*my_math\.yaml\): .*{message}") as err:
        _build(resolve_tasks(["my_math"], task_dir), data)
    _one_line(err)


def test_task_code_is_refused_unless_opted_in(task_dir, tmp_path):
    yaml_path = task_dir / "my_math.yaml"
    text = yaml_path.read_text()
    cases = [
        ("process_docs: !function os.system\n", r"!function os\.system resolves outside lm-eval's tasks"),
        ("class: !function subprocess.Popen\n", r"class: class: !function subprocess\.Popen"),
        ("dataset_kwargs:\n  trust_remote_code: true\n", r"dataset_kwargs\.trust_remote_code is set"),
        ("metadata:\n  unsafe_code: true\n", r"metadata\.unsafe_code is set"),
        (f"include: {tmp_path / 'elsewhere.yaml'}\n", "leaves the task directory"),
    ]
    (tmp_path / "elsewhere.yaml").write_text("output_type: generate_until\n")
    for extra, message in cases:
        yaml_path.write_text(text + extra)
        tasks = resolve_tasks(["my_math"], task_dir)
        with pytest.raises(SaeMergeError, match=message) as err:
            check_task_safety(tasks)
        assert "my_math.yaml" in _one_line(err)
    yaml_path.write_text(text + "process_docs: !function os.path.basename\n")
    code = check_task_safety(resolve_tasks(["my_math"], task_dir), allow_code=True)
    assert list(code) == ["my_math"] and all(len(h) == 64 for h in code["my_math"].values())
    # lm-eval's own task functions and saemerge's need no opt-in
    assert check_task_safety(resolve_tasks(["hellaswag", "mmlu_prox_sae"])) == {}


# -- identity ------------------------------------------------------------------------------------------
def test_the_evaluator_identity_changes_with_each_input_and_only_then(task_dir, data, tmp_path, monkeypatch):
    config = {
        "opt_sizes": {"my_math": 2},
        "test_sizes": {"my_math": 2},
        "data_uri": str(data),
        "eval_dtype": "float32",
        "eval_device": "cpu",
        "eval_batch_size": 8,
        "seed": 0,
    }

    def ident(**over):
        return cache_identity({**config, **over}, resolve_tasks(["my_math"], task_dir))

    first = ident()
    assert ident() == first  # changing none reuses the scores
    # the data's content, not its URI
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    assert ident(data_uri=str(moved)) == first
    rows = load_split(resolve_tasks(["my_math"], task_dir)["my_math"], moved, "test")
    write_jsonl(moved / "gsm8k" / "test.jsonl", [*rows, {"question": "1+1?", "answer": "#### 2"}])
    assert ident(data_uri=str(moved)) != first
    # the YAML and every file it includes
    (task_dir / "base.yaml").write_text("output_type: generate_until\n")
    yaml_path = task_dir / "my_math.yaml"
    text = yaml_path.read_text()
    yaml_path.write_text(text + "include: base.yaml\n")
    with_include = ident()
    assert with_include != first
    (task_dir / "base.yaml").write_text("output_type: generate_until\n# edited\n")
    assert ident() != with_include
    yaml_path.write_text(text)
    assert ident() == first
    # the sidecar
    side = task_dir / "my_math.saemerge.yaml"
    sidecar = side.read_text()
    side.write_text(sidecar + "weight: 2\n")
    assert ident() != first
    side.write_text(sidecar)
    # the chat settings (the task directory's saemerge.yaml)
    (task_dir / "saemerge.yaml").write_text("apply_chat_template: true\n")
    assert ident() != first
    (task_dir / "saemerge.yaml").unlink()
    # dtype, and lm-eval's version
    assert ident(eval_dtype="bfloat16") != first
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda d: "9.9.9" if d == "lm_eval" else real(d))
    assert ident() != first


# -- the run's first step -----------------------------------------------------------------------------
def test_the_first_step_refuses_bad_tasks_and_writes_nothing(tiny_family, task_dir, data, tmp_path):
    from saemerge import storage
    from saemerge.config import RunConfig
    from saemerge.runlog import RunLayout
    from saemerge.steps.population import start_run

    params = {
        "run_uri": str(tmp_path / "run"),
        "experts": [str(tiny_family["expert0"]), str(tiny_family["expert1"])],
        "base_uri": str(tiny_family["base"]),
        "data_uri": str(data),
        "opt_sizes": {"my_math": 3, "arc_easy": 2},
        "test_sizes": {"my_math": 3, "arc_easy": 2},
        "tasks_uri": str(task_dir),
    }
    for bad, message in (
        ({"opt_sizes": {"my_mth": 3}, "test_sizes": {"my_mth": 3}}, "unknown task 'my_mth'; did you mean 'my_math'"),
        ({"opt_sizes": {"my_math": 30, "arc_easy": 2}}, "task my_math asks for 30 optimisation examples"),
    ):
        with pytest.raises(SaeMergeError, match=message):
            start_run(RunConfig.from_params({**params, **bad}))
        assert not storage.exists(RunLayout(params["run_uri"]).run_json)
    write_sidecar(task_dir, "my_math", data="gsm8k", pool_splits=["train"], metric="acc", filter="first")
    with pytest.raises(SaeMergeError, match="unknown metric in task my_math"):
        start_run(RunConfig.from_params(params))
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())

    write_sidecar(task_dir, "my_math", data="gsm8k", pool_splits=["train"], metric="exact_match", filter="first")
    start_run(RunConfig.from_params(params))
    info = RunLayout(params["run_uri"]).read_config()
    assert info["tasks_uri"] == str(task_dir) and info["task_code"] is False
    import json

    recorded = json.loads((tmp_path / "run" / "run.json").read_text())
    assert recorded["tasks"]["arc_easy"]["source"] == "lm_eval" and recorded["tasks"]["my_math"]["weight"] == 1.0
    assert recorded["chat"]["apply_chat_template"] is False and recorded["task_code"] == {}
    assert recorded["evaluator_identity"] == cache_identity(recorded["config"])
