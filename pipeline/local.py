"""`saemerge run --local`: the same pipeline under kfp.local, on the embedded S3 store.

Phases, each timed and printed:
1. object store: the S3 endpoint in the environment, or the embedded SeaweedFS (started here);
2. benchmark: the tiny bench built once into ``.saemerge/bench/`` and uploaded once (content-addressed);
3. pipeline: kfp.local runs the compiled pipeline in a child process
   (:mod:`saemerge.pipeline.local_child`, with the runner ``--runner`` names) whose (very chatty)
   output goes to ``RUN_DIR/kfp.log``; this process follows the run in S3 and prints one line per
   finished generation, and on a failure the step's one-line reason
   (:mod:`saemerge.pipeline.local_failures`);
4. results: the test-set table and the report, downloaded to ``RUN_DIR/report/``.

Resume: the run's steps are idempotent (content-addressed models, per-example score cache, recipe
files), so running the same run id again finishes an interrupted run without redoing finished work.
``--resume RUN`` takes everything from the run's own record (``run.json``: search, steps, seed,
every parameter; the bench from its ``data_uri``): a flag given beside it must agree with the
record, or it is refused in one line before the bench is built or the pipeline started
(:func:`resumed_config`).

Lifecycle: one process drives a run at a time (a lease in the run, :mod:`saemerge.lease`). The
kfp child runs in its own process group and watches this process: if it dies, even by SIGKILL,
the child stops every step it started. Locally there is no pod to lose, so steps are not retried:
a failed step fails the run at once, with its one-line reason, and a resume continues it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from saemerge import runlog, storage
from saemerge.config import RunConfig
from saemerge.errors import SaeMergeError
from saemerge.lease import RunLease
from saemerge.pipeline.local_child import DEFAULT_RUNNER, check_runner, step_environment
from saemerge.pipeline.local_failures import failure_reason
from saemerge.pipeline.searches import get_search
from saemerge.report import PLOTS, results_text
from saemerge.run.metrics import metrics_detail
from saemerge.runlog import RunLayout

log = logging.getLogger(__name__)

BUCKET = "saemerge"
BENCH_MODELS = ("base", "math", "multilingual")
LOCAL_EVAL_BATCH = 64
# What a local run sets unless told otherwise. The bench's tiny models: a batch of 64 scored the
# same answers as 16, 1.3x faster (benchmarks/eval_settings_check.py); on a cluster the
# default (16) stands.
LOCAL_DEFAULTS = {"eval_batch_size": LOCAL_EVAL_BATCH}


def local_defaults(bench_size: str) -> dict:
    """:data:`LOCAL_DEFAULTS` and the test sizes of a run on that bench: the default test sizes,
    each capped at what the bench's test split holds, so a run on the micro bench works without
    ``--param test_sizes`` (32 and 144 items; the tiny bench holds more than the default).

    Raises:
        SaeMergeError: an unknown bench size.
    """
    from saemerge.bench.sizes import get_size
    from saemerge.config import PARAMS
    from saemerge.evaluate.taskset import shipped_tasks

    held = get_size(bench_size).test_counts
    tasks = shipped_tasks()
    sizes = {task: min(int(n), held[tasks[task].data]) for task, n in PARAMS["test_sizes"].default.items()}
    return {**LOCAL_DEFAULTS, "test_sizes": sizes}


@dataclass
class LocalRun:
    """What `saemerge run --local` runs; every field has a command-line flag."""

    run_id: str
    workdir: Path = Path(".saemerge")
    bench_size: str = "tiny"
    seed: int = 0
    bench_seed: int | None = None  # None: the run seed (a study varies them apart)
    search: str = "sae"
    steps: int | None = None  # None: the search's default
    params: dict = field(default_factory=dict)  # pipeline parameters overriding the defaults
    resume: bool = False
    bucket: str = BUCKET
    runner: str = DEFAULT_RUNNER  # how each step runs (saemerge.pipeline.local_child.RUNNERS)
    # With `resume`: the flags given beside --resume (flag as written -> value), each checked
    # against the run's record; every other field then comes from run.json.
    given: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Before anything is made from it: a run id like ../../etc would name a directory
        # outside the work directory and a key S3 refuses.
        runlog.check_run_id(self.run_id, "--resume" if self.resume else "--run-id")

    @property
    def run_dir(self) -> Path:
        return self.workdir / "runs" / self.run_id

    @property
    def run_uri(self) -> str:
        return f"s3://{self.bucket}/runs/{self.run_id}"

    @property
    def bench(self) -> int:
        """The bench's seed: ``bench_seed``, or the run seed when none is given."""
        return self.seed if self.bench_seed is None else self.bench_seed

    @property
    def bench_uri(self) -> str:
        return bench_uri(self.bucket, self.bench_size, self.bench)

    def config(self) -> RunConfig:
        """The run's configuration: the bench's models and data, then the user's --param values.

        Raises:
            SaeMergeError: a bad parameter, named as written (``s_min``), before anything starts.
        """
        for name, flag in (("steps", "--steps"), ("search", "--search")):
            if name in self.params:
                raise SaeMergeError(f"--param {name}: give it as {flag}")
        bench = self.bench_uri
        steps = self.steps if self.steps is not None else get_search(self.search).default_steps
        return RunConfig.from_params(
            {
                "run_uri": self.run_uri,
                "experts": [f"{bench}/models/math", f"{bench}/models/multilingual"],
                "base_uri": f"{bench}/models/base",
                "data_uri": f"{bench}/data",
                "seed": self.seed,
                "search": self.search,
                "steps": steps,
                **local_defaults(self.bench_size),
                **self.params,
            }
        )


# Where ensure_bench publishes a bench (bench_uri): a run on it records BENCH/data as data_uri.
_BENCH_DATA = re.compile(r"^s3://(?P<bucket>[^/]+)/bench/(?P<size>[a-z]+)-seed(?P<seed>\d+)-v(?P<version>\d+)/data$")


def recorded_bench(config: RunConfig) -> tuple[str, int, int] | None:
    """(size, seed, version) of the bench a run's data comes from, or None (data of its own)."""
    m = _BENCH_DATA.match(config.data_uri)
    return (m["size"], int(m["seed"]), int(m["version"])) if m else None


def resumed_config(run: LocalRun) -> RunConfig:
    """The configuration of the run `run` resumes, from its ``run.json``; the store must be up.

    Every flag in ``run.given`` must agree with the record: one that does not is refused,
    naming the flag, what it says and what the run was started with.

    Raises:
        SaeMergeError: no run at the URI, or a flag that disagrees with the record.
    """
    from saemerge.config import typed

    layout = RunLayout(run.run_uri)
    if not storage.exists(layout.run_json):
        raise SaeMergeError(f"--resume {run.run_id}: no run at {run.run_uri} (no run.json; check --bucket, --workdir)")
    config = RunConfig.from_json(layout.read_config())
    bench = recorded_bench(config)
    recorded = {"--search": config.search, "--steps": config.steps, "--seed": config.seed}
    if bench is not None:
        recorded.update({"--bench-size": bench[0], "--bench-seed": bench[1]})
    for flag, value in run.given.items():
        if flag.startswith("--param "):
            name = flag.removeprefix("--param ")
            if name in ("steps", "search"):
                raise SaeMergeError(f"--param {name}: give it as --{name}")
            value = typed(label=lambda n: f"--param {n}", **{name: value})[name]
            was = getattr(config, name)
        elif flag in recorded:
            was = recorded[flag]
        else:  # --bench-size or --bench-seed for a run whose data is not a bench
            raise SaeMergeError(
                f"{flag} {value}: run {run.run_id} uses no bench (its data_uri is {config.data_uri}); leave the flag out"
            )
        if value != was:
            shown = json.dumps(value) if not isinstance(value, str) else value
            raise SaeMergeError(
                f"{flag} {shown}: run {run.run_id} was started with {json.dumps(was) if not isinstance(was, str) else was} "
                f"({layout.run_json}); leave the flag out to resume it with its recorded settings"
            )
    return config


def check_fresh_run(run: LocalRun, config: RunConfig) -> None:
    """A new run (``--run-id``) naming a run that exists must be that run: same configuration
    (then it continues it, as ``--resume`` would); another is refused before the bench is built.

    Raises:
        SaeMergeError: the run exists with another configuration, naming a differing setting.
    """
    layout = RunLayout(run.run_uri)
    if not storage.exists(layout.run_json):
        return
    was, now = layout.read_config(), config.to_json()
    differ = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
    if differ:
        name = differ[0]
        raise SaeMergeError(
            f"--run-id {run.run_id}: that run exists ({layout.run_json}) with another {name} "
            f"({json.dumps(was.get(name))}, here {json.dumps(now.get(name))}); continue it with "
            f"`saemerge run --local --resume {run.run_id}` (its own settings), or name another run id"
        )


def bench_version() -> int:
    from saemerge.bench.build import BENCH_VERSION

    return BENCH_VERSION


def bench_uri(bucket: str, size: str, seed: int) -> str:
    """Where a bench is published; versioned, so a bench rebuilt by newer code gets a new URI
    (example ids are only unique within one data set: score caches key on the data's URI)."""
    return f"s3://{bucket}/bench/{size}-seed{seed}-v{bench_version()}"


class Phases:
    """Prints each phase's wall time as it ends and keeps them for the summary."""

    def __init__(self):
        self.times: list[tuple[str, float]] = []
        self.start = time.perf_counter()

    def done(self, name: str, since: float) -> None:
        seconds = time.perf_counter() - since
        self.times.append((name, seconds))
        print(f"[{time.perf_counter() - self.start:7.1f}s] {name}: {seconds:.1f} s", flush=True)

    def summary(self) -> str:
        total = time.perf_counter() - self.start
        return "\n".join([f"  {n:<34}{s:8.1f} s" for n, s in self.times] + [f"  {'total':<34}{total:8.1f} s"])


def ensure_store(workdir: Path, bucket: str):
    """Use the S3 endpoint in the environment, or start the embedded store. Returns it (or None)."""
    from saemerge.s3server.server import Store

    if os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_PROFILE"):
        log.info("using the S3 endpoint from the environment")
        storage.ensure_bucket(f"s3://{bucket}", create=True)
        return None
    root = workdir / "store"
    started = Store.attach_detached(root)
    if started is not None:  # `saemerge store start`: used, and left running
        log.info("using the object store started with `saemerge store start` under %s", root)
        started.ensure_buckets([bucket])
        os.environ.update(started.env())
        return None
    store = Store(root, buckets=[bucket]).start()
    os.environ.update(store.env())
    return store


def ensure_bench(workdir: Path, size: str, seed: int, bucket: str) -> str:
    """Build the bench once (local cache) and publish it once under s3://BUCKET/bench/; return its URI.

    A bench the store already holds whole is used as it is, with no local build."""
    from saemerge.bench.build import build_bench

    uri = bench_uri(bucket, size, seed)
    parts = [f"models/{m}" for m in BENCH_MODELS] + ["data"]
    if all(storage.exists(storage.join(uri, part)) for part in parts):
        return uri
    local = workdir / "bench" / f"{size}-seed{seed}"
    built = (
        json.loads((local / "bench.json").read_text()).get("version", 1) if (local / "bench.json").exists() else None
    )
    if built != bench_version():
        why = (
            "once" if built is None else f"again: the cached one is version {built}, this code builds {bench_version()}"
        )
        print(f"building the {size} benchmark {why} (cached in {local}) ...", flush=True)
        build_bench(local, size=size, seed=seed, force=built is not None)
    for part in parts:
        target = storage.join(uri, part)
        if not storage.exists(target):
            with storage.local_output(target) as out:
                _copy_tree(local / part, out)
    return uri


def _copy_tree(src: Path, dst: Path) -> None:
    import shutil

    for item in src.iterdir():
        if item.is_dir():
            shutil.copytree(item, dst / item.name)
        elif item.name != "manifest.json":
            shutil.copy2(item, dst / item.name)


def _follow(
    run: LocalRun, steps: int, proc: subprocess.Popen, phases: Phases, started: float, lease: RunLease, log_from: int
) -> None:
    """Print one line per finished generation while the kfp.local child runs."""
    seen: set[str] = set()
    last = started
    layout = RunLayout(run.run_uri)
    names = ["init", *[runlog.gen_name(g) for g in range(steps)]]
    while True:
        finished = proc.poll() is not None
        for name in names:
            uri = layout.metrics(name)
            if name in seen or not storage.exists(uri):
                continue
            m = runlog.read_json(uri)
            seen.add(name)
            label = "initial population" if name == "init" else f"generation {m['generation']:2d} (s_t={m['s_t']:.4f})"
            phases.done(f"{label}", last)
            print(f"           {metrics_detail(m)}", flush=True)
            last = time.perf_counter()
        if finished:
            break
        lease.heartbeat()
        time.sleep(1.0)
    if proc.returncode != 0:
        with open(run.run_dir / "kfp.log", "rb") as f:
            f.seek(log_from)
            step, reason, resumable = failure_reason(f.read().decode(errors="replace"))
        where = f"step {step!r} failed" if step else f"the pipeline failed (exit {proc.returncode})"
        again = f"saemerge run --local --resume {run.run_id}"
        if resumable:
            hint = f"; resume with: {again}"
        elif run.resume:  # the input is the run's own record: what it made is kept either way
            hint = f"; fix the cause (the step's input or the store), then resume again: {again}"
        else:
            hint = "; fix the input and start a new run"
        raise SaeMergeError(f"{where}: {reason or 'see the log'} (log: {run.run_dir / 'kfp.log'}){hint}")
    phases.done("final evaluation + report", last)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_local(run: LocalRun) -> list[dict]:
    """The whole local run; returns the results rows.

    A resume reads its configuration from the run's record once the store is up
    (:func:`resumed_config`); a new run's parameters are checked before the store starts."""
    config = None if run.resume else run.config()  # a bad parameter stops here, before anything starts
    check_runner(run.runner)
    phases = Phases()
    t = time.perf_counter()
    store = ensure_store(run.workdir, run.bucket)
    lease: RunLease | None = None
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop the kfp child too, not only this process
    phases.done("object store", t)
    try:
        layout = RunLayout(run.run_uri)
        if config is None:
            config = resumed_config(run)  # a flag that disagrees stops here, before the bench or the pipeline
        lease = RunLease(layout.lease, run=run.run_id).acquire()
        if not run.resume:
            check_fresh_run(run, config)
        run.run_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        bench = recorded_bench(config) if run.resume else (run.bench_size, run.bench, bench_version())
        if bench is not None and bench[2] == bench_version():
            ensure_bench(run.workdir, bench[0], bench[1], run.bucket)
        elif bench is not None and not storage.exists(config.data_uri):
            raise SaeMergeError(
                f"--resume {run.run_id}: its bench {config.data_uri.removesuffix('/data')} is no longer in the "
                f"store, and this code builds bench version {bench_version()}, not {bench[2]}"
            )
        phases.done("benchmark (built once, cached)", t)
        (run.run_dir / "arguments.json").write_text(json.dumps(config.pipeline_arguments(), indent=1))
        print(
            f"run {run.run_id}: {run.run_uri} ({config.steps} generations); kfp log: {run.run_dir / 'kfp.log'}",
            flush=True,
        )
        t = time.perf_counter()
        with open(run.run_dir / "kfp.log", "ab") as logf:
            log_from = logf.tell()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "saemerge.pipeline.local_child",
                    config.search,
                    str(config.steps),
                    str(run.run_dir / "kfp-root"),
                    str(run.run_dir / "arguments.json"),
                    str(os.getpid()),
                    run.runner,
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=step_environment(),
            )
            try:
                _follow(run, config.steps, proc, phases, t, lease, log_from)
            except BaseException:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                raise
        t = time.perf_counter()
        rows = layout.read_results()
        report_dir = run.run_dir / "report"
        report_dir.mkdir(exist_ok=True)
        for name in ["report.md", "report.html", *PLOTS]:
            storage.get_file(layout.final(name), report_dir / name)
        phases.done("download report", t)
    finally:
        if lease is not None:
            lease.release()
        if store is not None:
            store.stop()

    print("\nTest-set accuracy (macro avg = mean over tasks; sparsity = zero fraction of the task vector):")
    print(results_text(rows))
    print(f"\nreport: {run.run_dir / 'report' / 'report.md'} (and {run.run_uri}/final/)")
    print("phases:\n" + phases.summary())
    return rows
