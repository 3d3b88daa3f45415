"""The kfp.local child of `saemerge run --local`: compiles the pipeline and runs its YAML here.

:mod:`saemerge.pipeline.local` starts this module as a process of its own (its own session, so
a stop reaches every step it started) with the environment of :func:`step_environment`. Which
kfp.local runner executes each step is chosen by name from :data:`RUNNERS`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from saemerge.errors import SaeMergeError
from saemerge.pipeline.local_warm import warm_runner

log = logging.getLogger(__name__)


def subprocess_runner(pipeline_root: Path):
    """Each step a fresh local process, in this interpreter's environment (kfp.local's own runner)."""
    from kfp import local

    return local.SubprocessRunner(use_venv=False)


def docker_runner(pipeline_root: Path):
    """Each step a container of its image (:mod:`saemerge.pipeline.local_docker`)."""
    from saemerge.pipeline.local_docker import docker_runner

    return docker_runner(pipeline_root)


# How the kfp.local child runs each step: name -> a function of the pipeline root returning
# kfp.local's runner. `saemerge run --local --runner NAME` picks one; an unknown name is
# refused before anything starts. warm: each step forked from a server that imported the
# steps' code once (:mod:`saemerge.pipeline.local_warm`).
RUNNERS = {"subprocess": subprocess_runner, "warm": warm_runner, "docker": docker_runner}
DEFAULT_RUNNER = "warm"


def check_runner(name: str) -> str:
    """The runner's name, or a one-line error naming the choices."""
    if name not in RUNNERS:
        raise SaeMergeError(f"--runner {name!r}: unknown; choose one of {', '.join(sorted(RUNNERS))}")
    return name


def run_pipeline_here(search: str, steps: int, pipeline_root: Path, arguments: dict, runner: str) -> None:
    """Compile the pipeline and run the compiled YAML under kfp.local (the child's entry point).

    Running the YAML rather than the Python function means the file a user uploads to Kubeflow
    is the file that ran here.
    """
    from saemerge.pipeline.common import CompileOptions
    from saemerge.pipeline.compile import compile_pipeline

    compiled = Path(pipeline_root) / f"{search}_pipeline.yaml"
    stats = compile_pipeline(compiled, CompileOptions(search=search, steps=steps, retries=0))
    log.info("compiled %s: %s", compiled, stats)
    run_package_here(compiled, pipeline_root, arguments, runner)


def run_package_here(package: Path, pipeline_root: Path, arguments: dict, runner: str) -> None:
    """Run a compiled pipeline YAML (this one's, or one uploaded to a cluster) under kfp.local."""
    from kfp import components, local

    local.init(runner=RUNNERS[check_runner(runner)](Path(pipeline_root)), pipeline_root=str(pipeline_root))
    components.load_component_from_file(str(package))(**arguments)


def stop_with_parent(parent: int, interval: float = 0.5) -> None:
    """In the kfp child: when `parent` is gone, kill this process group (every step it started).

    The child runs in its own session, so a SIGKILL of `saemerge run` would otherwise leave it
    running steps against the store or the user's S3.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def step_environment() -> dict:
    """The environment of the local steps: the S3 settings, and a torch thread count that fits.

    Steps run side by side (merges fan out) on a laptop's few cores; torch's default of one
    OpenMP thread per core then oversubscribes the CPU, and spinning OpenMP threads made a
    merge of the tiny models 30x slower here (16 s instead of 0.5 s). One thread per step
    per two cores avoids that; OMP_NUM_THREADS set by the user wins. An evaluate step runs
    alone in its run, so evaluation takes the cores that are idle when it starts
    (``SAEMERGE_EVAL_THREADS=idle``, :func:`saemerge.evaluate.hf.set_cpu_threads`); a setting
    the user (or ``saemerge study run --local --parallel``) gives wins.
    """
    from saemerge.cpus import EVAL_THREADS_ENV, IDLE

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
    env.setdefault(EVAL_THREADS_ENV, IDLE)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


if __name__ == "__main__":  # SEARCH STEPS PIPELINE_ROOT ARGUMENTS_JSON PARENT_PID RUNNER
    logging.basicConfig(level=logging.INFO)
    stop_with_parent(int(sys.argv[5]))
    run_pipeline_here(
        sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), json.loads(Path(sys.argv[4]).read_text()), sys.argv[6]
    )
