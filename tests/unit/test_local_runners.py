"""`saemerge run --local --runner NAME`: the registry's names, the default, and which commands
the warm runner forks (kfp's lightweight-component launch) or leaves to a fresh process."""

import pytest

from saemerge.errors import SaeMergeError
from saemerge.pipeline.local_child import DEFAULT_RUNNER, RUNNERS, check_runner
from saemerge.pipeline.local_warm import executor_arguments

LAUNCH = (
    "program_path=$(mktemp -d)\n"
    'printf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
    "_KFP_RUNTIME=true /venv/bin/python -m kfp.dsl.executor_main                         --component_module_path"
    '                         "$program_path/ephemeral_component.py"                         "$@"\n'
)


def test_steps_start_warm_unless_told_otherwise():
    assert DEFAULT_RUNNER == "warm"
    assert {"warm", "subprocess"} <= set(RUNNERS)
    assert check_runner("subprocess") == "subprocess"


def test_an_unknown_runner_is_one_line_naming_the_choices():
    with pytest.raises(SaeMergeError, match=r"--runner 'wram': unknown; choose one of .*subprocess.*warm"):
        check_runner("wram")


def test_the_warm_runner_forks_kfps_launch_and_nothing_else():
    args = ["--executor_input", "{}", "--function_to_execute", "prune"]
    assert executor_arguments(["sh", "-ec", LAUNCH, "def prune(): ...", *args]) == ("def prune(): ...", args)
    assert executor_arguments(["sh", "-c", LAUNCH, "def prune(): ...", *args]) is None  # kfp's pip-install variant
    assert executor_arguments(["sh", "-ec", "python3 -m my.module", "x"]) is None
    assert executor_arguments(["python3", "-m", "kfp.dsl.executor_main"]) is None
