"""The warm runner (saemerge.pipeline.local_warm) keeps what kfp.local's subprocess runner gives a
step: its environment, working directory, output and exit code; a crash stays in its step; and
nothing outlives the process that started the fork server. Steps here are real kfp.local tasks
of small lightweight components, forked from a real server."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import yaml
from kfp import dsl, local
from kfp.local import subprocess_task_handler

from saemerge.pipeline import local_warm
from saemerge.pipeline.searches import SEARCHES

pytestmark = pytest.mark.integration

LIGHT = ("kfp.dsl.executor_main",)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A fork server that imported kfp's executor, installed where kfp.local launches a step."""
    fork_server = local_warm.ForkServer(imports=(*LIGHT, "torch"))
    monkeypatch.setattr(subprocess_task_handler, "run_local_subprocess", fork_server.run)
    monkeypatch.setattr(local_warm, "_PLAIN_RUN", None)  # a fallback would fail the test
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    yield fork_server
    fork_server.close()
    assert fork_server.proc.returncode is not None


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def report_process(marker: str) -> str:
    import os
    import sys

    import torch

    print(f"stdout {marker} pid={os.getpid()}")
    print(f"stderr {marker}", file=sys.stderr)
    return f"{os.environ.get('WARM_TEST_VAR')}|{os.getcwd()}|{torch.get_num_threads()}|{os.getppid()}"


def test_a_step_gets_its_environment_threads_streams_and_result(server, monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("WARM_TEST_VAR", "set-after-the-server-started")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    task = report_process(marker="hello")
    var, cwd, threads, parent = task.output.split("|")
    assert var == "set-after-the-server-started"
    assert Path(cwd) == tmp_path
    assert threads == "1"
    assert int(parent) == server.proc.pid  # forked by the server, not started by kfp.local
    out = capfd.readouterr().out
    assert "stdout hello pid=" in out and "stderr hello" in out


LAUNCH = (
    "program_path=$(mktemp -d)\n"
    'printf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
    '_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path "$program_path/ephemeral_component.py" "$@"\n'
)


def launch(body: str, tmp: Path) -> list[str]:
    """kfp's command for a component ``step()`` with `body`, as kfp.local hands it to the launcher."""
    source = "def step():\n" + textwrap.indent(textwrap.dedent(body), "    ")
    executor_input = json.dumps({"inputs": {}, "outputs": {"outputFile": str(tmp / "executor_output.json")}})
    command = ["sh", "-ec", LAUNCH, source, "--executor_input", executor_input, "--function_to_execute", "step"]
    return subprocess_task_handler.replace_python_executable(command, sys.executable)


CRASHES = {
    "exit": ("import sys\nsys.exit(3)", 3),
    "raise": ("raise ValueError('a step that raises')", 1),
    "signal": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", -9),
}


@pytest.mark.parametrize("how", sorted(CRASHES))
def test_a_crashing_step_fails_alone(server, how, tmp_path, capfd):
    body, code = CRASHES[how]
    assert server.run(launch(body, tmp_path), {}) == code
    if how == "raise":
        assert "ValueError: a step that raises" in capfd.readouterr().out  # the traceback reaches kfp.local
    assert server.proc.poll() is None  # the server goes on, and so do the next steps
    assert report_process(marker="after").output.startswith("None|")
    assert server.run(launch("print('fine')", tmp_path), {"WARM_TEST_VAR": "x"}) == 0


def test_every_compiled_step_is_launched_warm():
    """Every step of the three compiled pipelines is kfp's lightweight-component launch the server
    recognises (after kfp.local put its interpreter in place of ``python3``): none falls back to
    a fresh process."""
    for search in SEARCHES.values():
        spec = next(yaml.safe_load_all(search.golden.read_text()))
        for label, executor in spec["deploymentSpec"]["executors"].items():
            container = executor["container"]
            command = subprocess_task_handler.replace_python_executable(
                [*container["command"], *container["args"]], sys.executable
            )
            found = local_warm.executor_arguments(command)
            assert found is not None, f"{search.name} {label}"
            assert "--function_to_execute" in found[1]


def test_the_server_starts_no_thread_of_its_own(server):
    """The server forks from the threads its imports leave (idle native pools such as OpenBLAS's),
    no more: it reaps and serves in one thread, and runs no torch compute."""
    report_process(marker="warm")
    proc = psutil.Process(server.proc.pid)
    before = None
    while before != proc.cpu_times():  # its imports are done once it stops using CPU
        before = proc.cpu_times()
        time.sleep(1.0)
    fresh = subprocess.run(
        [sys.executable, "-c", "import os, kfp.dsl.executor_main, torch; print(len(os.listdir('/proc/self/task')))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.num_threads() == int(fresh.stdout)


OWNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from saemerge.pipeline import local_warm
    from tests.integration.test_local_warm import launch

    server = local_warm.ForkServer(imports=("kfp.dsl.executor_main",))
    print("server", server.proc.pid, flush=True)
    server.run(launch("import time\\ntime.sleep(600)", Path(sys.argv[1])), {})
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_nothing_outlives_the_process_that_started_the_server(tmp_path, sig):
    """The kfp child dies (even by SIGKILL, with no chance to clean up): the server and the
    steps it forked go too."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    try:
        line = owner.stdout.readline()
        assert line.startswith("server "), line
        server = psutil.Process(int(line.split()[1]))
        deadline = time.monotonic() + 60
        while not server.children() and time.monotonic() < deadline:
            time.sleep(0.1)
        family = [server, *server.children(recursive=True)]
        assert len(family) >= 2, "the server forked no step"
        os.kill(owner.pid, sig)
        owner.wait(timeout=10)
        gone, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, [(p.pid, p.cmdline()) for p in alive if p.is_running()]
    finally:
        if owner.poll() is None:
            owner.kill()
