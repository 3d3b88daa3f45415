"""The warm runner of `saemerge run --local`: each step a fork of a process that imported its code once.

A step's process spends its first seconds importing kfp's executor, torch, transformers and
lm-eval (about 9 s for an evaluate step and 3.5 s for a merge on a 2-core machine) before its
first piece of work. The warm runner pays that once per run: the kfp.local child starts a
*fork server* (this module run as a program), which imports what the steps import and then
waits, single-threaded and idle, for steps. kfp.local keeps running the compiled YAML as it
does with its own :class:`kfp.local.SubprocessRunner`; only the launch of a step's command
(``kfp.local.subprocess_task_handler.run_local_subprocess``, called with the command and the
task's environment) goes to :meth:`ForkServer.run` instead of a fresh ``sh -ec ... python3 -m
kfp.dsl.executor_main``. The server forks one child per step, which does what that command
does: it writes the component's source to a temporary file and runs
``kfp.dsl.executor_main`` with the same arguments and environment.

What the subprocess runner guarantees stays:

- **environment**: the child's ``os.environ`` is the step's (kfp.local's environment plus the
  task's), its working directory kfp.local's. Settings a library reads when it is imported
  (``OMP_*``) are the server's, and the server has the kfp child's environment, which is what
  every step gets; the thread count is set again in the child (``OMP_NUM_THREADS`` →
  ``torch.set_num_threads``) before any work, and torch's default generator is reset to the
  seed a fresh import has;
- **output and exit code**: the child's stdout and stderr are a pipe kfp.local's side reads
  line by line and prints, as kfp.local does; the server reports the child's exit status
  (a signal as ``-N``, like :class:`subprocess.Popen`);
- **isolation**: a crashing step is one forked child; the server and other steps go on;
- **lifecycle**: the server lives in the kfp child's process group (a stop of the run kills
  the group), dies with the kfp child (``PR_SET_PDEATHSIG``, and the end of its control socket),
  and kills its steps when it goes; each step also dies with the server.

The server imports one module at a time while no step waits, so the first (light) steps of a
run need not wait for the heavy imports: a step forked earlier imports what is missing itself.
A forked step ends as an interpreter does (threads joined, atexit handlers, streams flushed)
but skips tearing down the inherited modules (:meth:`Step.run_and_exit`).

Forking: the server runs one thread, does no torch compute (torch's OpenMP pool starts in a
step), and moves its heap out of the collector's reach before each fork (``gc.freeze``). The
threads its imports leave are idle native pools (OpenBLAS's, which numpy starts at import;
pyarrow's jemalloc background thread), which those libraries re-create after a fork; a test
checks the server has no thread more than a fresh interpreter importing the same. Commands
that are not kfp's lightweight-component launch run as fresh processes, as before. This is a
local runner; the cluster path does not use it. It hooks ``run_local_subprocess`` of kfp.local
(kfp < 2.18, pinned): ``test_local_warm`` fails if kfp.local stops calling it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

log = logging.getLogger(__name__)

#: What a step's process imports before it does any work, per kind of step: kfp's executor, the
#: step's code, and for evaluation what lm-eval imports on the way to its first model (HFLM,
#: LLaMA's code). The one list of them: the server imports every kind's once (WARM_IMPORTS; an
#: import that fails is logged and left to the step), and benchmarks/run_bench.py times a fresh
#: process importing one kind's.
_EXECUTOR = (
    "kfp.dsl.executor_main",
    "saemerge.steps",
    "saemerge.steps.handoff",
    "saemerge.steps.records",
    "saemerge.steps.settings",  # every step after init reads the run's settings
)
_SCORING = ("saemerge.steps.evaluator", "saemerge.steps.score_cache", "saemerge.steps.evaluation")
_LM_EVAL = (
    "saemerge.evaluate.evaluator",
    "lm_eval.tasks",
    "lm_eval.evaluator",
    "lm_eval.models.huggingface",
    "transformers.models.llama.modeling_llama",
)
STEP_IMPORTS: dict[str, tuple[str, ...]] = {  # light kinds first: the server imports in this order
    "init-population": (*_EXECUTOR, "saemerge.steps.population"),
    "pair-and-merge": (*_EXECUTOR, "saemerge.steps.models"),
    "pso": (*_EXECUTOR, "saemerge.steps.pso"),
    "m2n2": (*_EXECUTOR, "saemerge.steps.m2n2"),
    "evaluate": (*_EXECUTOR, *_SCORING, *_LM_EVAL),
    "final-evaluate": (*_EXECUTOR, *_SCORING, *_LM_EVAL, "saemerge.steps.final"),
    "report": (*_EXECUTOR, "saemerge.report"),
}
WARM_IMPORTS = tuple(dict.fromkeys(m for modules in STEP_IMPORTS.values() for m in modules))

#: kfp's launch of a lightweight component: ``sh -ec SCRIPT SOURCE ARGS...``, where SCRIPT
#: writes SOURCE ($0) to ephemeral_component.py and runs the executor on it with ARGS ("$@").
#: kfp.local has replaced ``python3`` with its interpreter's path by the time the command arrives.
EXECUTOR_LAUNCH = re.compile(
    r"_KFP_RUNTIME=true \S+ -m kfp\.dsl\.executor_main\s+--component_module_path\s+"
    r'"\$program_path/ephemeral_component\.py"\s+"\$@"'
)
PR_SET_PDEATHSIG = 1
REAP_INTERVAL = 0.05  # seconds between checks for finished steps while some run


def _die_with_parent(sig: int) -> None:
    """Have the kernel send `sig` to this process when its parent exits (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def native_threads() -> int:
    """This process's threads as the OS counts them (OpenMP and library threads included)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def executor_arguments(command: Sequence[str]) -> tuple[str, list[str]] | None:
    """(component source, the executor's arguments) of kfp's lightweight-component launch, or None
    for any other command (which then runs as a fresh process)."""
    if len(command) < 4 or list(command[:2]) != ["sh", "-ec"] or not EXECUTOR_LAUNCH.search(command[2]):
        return None
    return command[3], list(command[4:])


# ---------------------------------------------------------------- the kfp.local side


class ForkServer:
    """The kfp child's handle on the fork server: starts it, and runs step commands through it."""

    def __init__(self, imports: Sequence[str] = WARM_IMPORTS) -> None:
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "saemerge.pipeline.local_warm",
                str(theirs.fileno()),
                str(os.getpid()),
                ",".join(imports),
            ],
            pass_fds=[theirs.fileno()],
        )
        theirs.close()

    def run(self, full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        """Run one step's command; prints its output as kfp.local does and returns its exit code
        (the signature of ``kfp.local.subprocess_task_handler.run_local_subprocess``)."""
        launch = executor_arguments(full_command)
        if launch is None or self.proc.poll() is not None:
            why = "not a kfp lightweight-component launch" if launch is None else "the fork server has ended"
            if _PLAIN_RUN is None:
                raise RuntimeError(f"warm runner: cannot run this step ({why}) and kfp.local's launcher is not kept")
            print(f"warm runner: this step runs as a fresh process ({why})", flush=True)
            return _PLAIN_RUN(full_command, env_vars)
        source, args = launch
        request = {"source": source, "args": args, "env": {**os.environ, **(env_vars or {})}, "cwd": os.getcwd()}
        read_end, write_end = os.pipe()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                socket.send_fds(self._control, [b"step"], [write_end, theirs.fileno()])
        finally:
            os.close(write_end)
            theirs.close()
        with mine, open(read_end, encoding="utf-8", errors="replace", newline=None) as out:
            mine.sendall(json.dumps(request).encode())
            mine.shutdown(socket.SHUT_WR)
            for line in iter(out.readline, ""):
                print(line, end="")
            print("\n")  # kfp.local's separation after a step's output
            status = b"".join(iter(lambda: mine.recv(64), b""))
        if not status:
            raise RuntimeError("the warm runner's fork server ended before the step did")
        return int(status)

    def close(self) -> None:
        self._control.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_PLAIN_RUN: Callable[..., int] | None = None  # kfp.local's own launcher, kept when the warm one is installed


def warm_runner(pipeline_root: Path | None = None):
    """kfp.local's SubprocessRunner whose steps are forked from a warm server (the RUNNERS entry;
    `pipeline_root` is not needed: the steps run on this host, as the plain subprocess runner's).

    The server starts here and imports while kfp.local compiles and starts the run.
    """
    global _PLAIN_RUN
    from kfp import local
    from kfp.local import subprocess_task_handler

    server = ForkServer()
    if _PLAIN_RUN is None:
        _PLAIN_RUN = subprocess_task_handler.run_local_subprocess
    subprocess_task_handler.run_local_subprocess = server.run
    return local.SubprocessRunner(use_venv=False)


# ---------------------------------------------------------------- the server


@dataclass
class Step:
    """What a forked child runs: kfp's executor on one component, with its own streams and status."""

    output: int  # the write end of kfp.local's pipe: the step's stdout and stderr
    request: socket.socket  # the step's request arrives here; the server reports its status on its copy

    def run(self) -> int:
        request = json.loads(b"".join(iter(lambda: self.request.recv(1 << 16), b"")))
        self.request.close()
        os.dup2(self.output, 1)
        os.dup2(self.output, 2)
        os.close(self.output)
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["_KFP_RUNTIME"] = "true"
        os.chdir(request["cwd"])
        _fresh_process_state()
        program = tempfile.mkdtemp()
        path = os.path.join(program, "ephemeral_component.py")
        with open(path, "w") as f:
            f.write(request["source"])
        sys.argv = ["executor_main", "--component_module_path", path, *request["args"]]
        import runpy

        runpy.run_module("kfp.dsl.executor_main", run_name="__main__", alter_sys=True)
        return 0

    def run_and_exit(self) -> NoReturn:
        """Run the step and end the child as a fresh interpreter ends, less the teardown.

        The step's exit code is the interpreter's (SystemExit's code; 1 and the traceback on
        stderr for an exception). At exit the child joins its threads, runs the atexit handlers
        (logging's flush, ``weakref.finalize``, saemerge.steps' freeze) and flushes its streams,
        as Python's own shutdown does; it then skips tearing down the modules it inherited: that
        would write to every shared page of the server's heap (reference counts), copying them
        all, and took 2.4 s per step on a loaded 2-core machine.
        """
        try:
            code = self.run()
        except SystemExit as stop:
            code = _exit_code(stop.code)
        except KeyboardInterrupt:
            traceback.print_exc()
            code = 128 + signal.SIGINT
        except BaseException:  # noqa: BLE001 - the step's failure, reported as the interpreter would
            sys.excepthook(*sys.exc_info())
            code = 1
        threading._shutdown()  # type: ignore[attr-defined]  # what Py_Finalize does first
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _exit_code(code: object) -> int:
    """The exit status `sys.exit(code)` gives (None: 0; an int; anything else printed, 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _fresh_process_state() -> None:
    """What a fresh interpreter would start with, where the fork inherited the server's."""
    for sig in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _die_with_parent(signal.SIGKILL)
    torch = sys.modules.get("torch")
    if torch is not None:
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))
        torch.manual_seed(torch.initial_seed())
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # a fresh process seeds numpy's global generator from the OS


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - a step that needs it fails with its own error
        print(f"warm runner: importing {name} failed ({e}); steps import it themselves", flush=True)


def serve(control: socket.socket, imports: Sequence[str] = WARM_IMPORTS) -> Step | None:
    """Fork one child per request until the control socket ends; returns only in a child (its Step).

    The server imports `imports` one module at a time while no request waits, so the run's first
    (light) steps need not wait for the heavy imports: a step forked before they are all done
    imports the rest itself, as a fresh process would.
    """
    running: dict[int, socket.socket] = {}
    pending, start = list(imports), time.perf_counter()

    def stop(*_):
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        wait = 0 if pending else (REAP_INTERVAL if running else None)
        ready, _, _ = select.select([control], [], [], wait)
        if ready:
            message, fds, _, _ = socket.recv_fds(control, 16, 2)
            if not message:  # the kfp child is gone
                stop()
            output, status = fds
            sys.stdout.flush()
            sys.stderr.flush()
            gc.freeze()  # the children share the heap's pages instead of copying them on a collection
            pid = os.fork()
            if pid == 0:
                control.close()
                for sock in running.values():
                    sock.close()
                running.clear()  # the child's own stop() must not reach its siblings
                return Step(output, socket.socket(fileno=status))
            os.close(output)
            running[pid] = socket.socket(fileno=status)
        elif pending:
            _import(pending.pop(0))
            if not pending:
                print(
                    f"warm runner: pid {os.getpid()} imported the steps' code in "
                    f"{time.perf_counter() - start:.1f} s ({native_threads()} native thread(s), "
                    f"{threading.active_count()} Python thread(s))",
                    flush=True,
                )
        while running:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            sock = running.pop(pid)
            with contextlib.suppress(OSError), sock:
                sock.sendall(str(os.waitstatus_to_exitcode(wait_status)).encode())


def main(argv: Sequence[str]) -> int:
    control_fd, parent, imports = int(argv[0]), int(argv[1]), [m for m in argv[2].split(",") if m]
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:
        return 0  # the kfp child ended before the server started
    step = serve(socket.socket(fileno=control_fd), imports)
    if step is not None:
        step.run_and_exit()
    return 0


if __name__ == "__main__":  # CONTROL_FD PARENT_PID MODULE,MODULE,...: the fork server
    sys.exit(main(sys.argv[1:]))
