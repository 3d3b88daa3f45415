"""`saemerge study run --local`: every unfinished grid entry as one `saemerge run --local`, N at a time.

Each run is a child process (``python -m saemerge run --local ...``) on the study's one
embedded store, writing its output to ``WORKDIR/runs/<run id>/study-driver.log``; this process
is the only writer of ``study.yaml``. Locally a run's evaluate steps use one core each, so two
runs side by side use a 2-core machine about twice as well as one (``--parallel``).

Lifecycle: a child gets SIGTERM when this process dies, however it dies (Linux
``PR_SET_PDEATHSIG``), and stops its own pipeline; on Ctrl-C or SIGTERM this process stops its
children, marks their entries pending, and the next call resumes them (their steps are
idempotent: nothing finished is redone). A failed run is recorded and the study goes on.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from saemerge import storage
from saemerge.errors import SaeMergeError
from saemerge.run.layout import RunLayout
from saemerge.study.runner import (
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    StudyLayout,
    StudyRecord,
    finished,
    reuse_finished_runs,
)
from saemerge.study.spec import Entry, StudySpec


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_args(record: StudyRecord, entry: Entry, state: dict, workdir: Path, bucket: str) -> list[str]:
    """The `saemerge run --local` command line of one entry (resuming it when it has started)."""
    spec, layout = record.spec, record.layout
    config = spec.run_config(entry, state["run_uri"], bucket, layout.score_cache)
    given = set(spec.params) | set(entry.arm.params) | {"score_cache"}
    args = [sys.executable, "-m", "saemerge", "run", "--local", "--workdir", str(workdir), "--bucket", bucket]
    args += ["--bench-size", spec.bench_size, "--seed", str(entry.run_seed), "--bench-seed", str(entry.bench_seed)]
    args += ["--search", entry.arm.search, "--steps", str(config.steps)]
    started = storage.exists(RunLayout(state["run_uri"]).run_json)
    args += ["--resume", state["run_id"]] if started else ["--run-id", state["run_id"]]
    for key, value in config.pipeline_arguments().items():
        if key in given:
            args += ["--param", f"{key}={json.dumps(value)}"]
    return args


def _last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("saemerge: error:")]
    return lines[-1].removeprefix("saemerge: error: ") if lines else f"see {log}"


def run_study_local(
    spec: StudySpec,
    *,
    study_id: str | None = None,
    workdir: Path = Path(".saemerge"),
    bucket: str = "saemerge",
    parallel: int = 1,
    max_runs: int | None = None,
    reuse: bool = True,
    out: Callable[[str], None] = print,
) -> StudyRecord:
    """Run every unfinished entry, `parallel` at a time, in the grid's order; see the module docstring.

    Args:
        max_runs: start at most this many runs in this call (a budget; call again to go on).
        reuse: an entry that another study of the bucket already ran with the same run
            identity (:func:`~saemerge.study.runner.run_identity`) points at that run instead of
            running it again.

    Raises:
        SaeMergeError: one or more runs failed (the others ran); the record says which and why.
    """
    from saemerge.pipeline.local import ensure_bench, ensure_store

    if spec.bench_uri:
        raise SaeMergeError(
            f"study {spec.name}: bench.uri is for `saemerge study submit`; `study run --local` builds its benches"
        )
    if parallel < 1:
        raise SaeMergeError(f"--parallel {parallel}: must be at least 1")
    workdir = Path(workdir)
    layout = StudyLayout(bucket, study_id or spec.name)
    store = ensure_store(workdir, bucket)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop the children and record them pending
    env = child_environment({**os.environ, **(store.env() if store is not None else {})}, parallel)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    started, failed, t0 = 0, [], time.perf_counter()
    try:
        record = StudyRecord.open(layout, spec)
        record.refresh()
        if reuse:
            reuse_finished_runs(record, bucket, local=True, out=out)
        entries = {e.id: e for e in record.spec.entries}
        todo = [i for i, s in record.entries.items() if s["status"] != SUCCEEDED]
        out(f"study {layout.study_id}: {len(entries)} runs, {record.counts()}, {parallel} at a time ({layout.root})")
        for bench_seed in sorted({entries[i].bench_seed for i in todo}):  # each bench built once, before the runs
            ensure_bench(workdir, record.spec.bench_size, bench_seed, bucket)
        while todo or running:
            while todo and len(running) < parallel and (max_runs is None or started < max_runs):
                entry_id = todo.pop(0)
                state = record.entries[entry_id]
                args = run_args(record, entries[entry_id], state, workdir, bucket)
                log = workdir / "runs" / state["run_id"] / "study-driver.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                started += 1
                out(f"=== study {layout.study_id}: run {entry_id} ({started}; {record.counts()}); log: {log}")
                with open(log, "ab") as f:
                    proc = subprocess.Popen(
                        args, stdout=f, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
                    )
                running[entry_id] = (proc, time.perf_counter())
                record.update(entry_id, status=RUNNING)
            if not running:
                out(f"study {layout.study_id}: stopping after {started} runs (--max-runs)")
                break
            time.sleep(1.0)
            for entry_id, (proc, t) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[entry_id]
                state = record.entries[entry_id]
                seconds = round(time.perf_counter() - t, 1)
                if proc.returncode == 0 and finished(state["run_uri"]):
                    record.update(entry_id, status=SUCCEEDED, seconds=_all_attempts(state, seconds))
                    out(f"study {layout.study_id}: run {entry_id} finished in {seconds:.0f} s")
                else:
                    log = workdir / "runs" / state["run_id"] / "study-driver.log"
                    record.update(
                        entry_id, status=FAILED, error=_last_error(log), seconds=_all_attempts(state, seconds)
                    )
                    failed.append(entry_id)
                    out(f"study {layout.study_id}: run {entry_id} failed: {_last_error(log)}")
        out(f"study {layout.study_id}: {record.counts()} in {time.perf_counter() - t0:.0f} s")
    except BaseException:
        _stop(running, record if "record" in locals() else None)
        raise
    finally:
        if store is not None:
            store.stop()
    if failed:
        raise SaeMergeError(f"study {layout.study_id}: {len(failed)} run(s) failed: {', '.join(failed)}")
    return record


def _all_attempts(state: dict, seconds: float) -> float:
    """An entry's seconds: this attempt's and every earlier one's."""
    return round(seconds + state.get("seconds", 0.0), 1)


def child_environment(env: dict[str, str], parallel: int) -> dict[str, str]:
    """The environment of the study's runs: `env`, and with `parallel` runs side by side a
    fixed share of the cores for each evaluation (``SAEMERGE_EVAL_THREADS``; a value already
    set wins). A local run's evaluation otherwise takes the cores idle when it starts, and two
    runs starting evaluations at once would each see the other's cores idle."""
    from saemerge.util.cpus import EVAL_THREADS_ENV, usable_cores

    env = dict(env)
    if parallel > 1:
        env.setdefault(EVAL_THREADS_ENV, str(max(1, usable_cores() // parallel)))
    return env


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop(running: dict[str, tuple[subprocess.Popen, float]], record: StudyRecord | None) -> None:
    """Stop the running children (each stops its pipeline) and mark their entries pending; the
    time they ran counts in their entries' seconds (a run's seconds are those of all attempts)."""
    for proc, _ in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for entry_id, (proc, started) in running.items():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if record is not None:
            seconds = round(time.perf_counter() - started, 1)
            record.update(entry_id, status=PENDING, seconds=_all_attempts(record.entries[entry_id], seconds))
