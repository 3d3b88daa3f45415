"""Where the time of a local SAE run goes, and how close its evaluate steps come to the model's speed.

    python benchmarks/run_bench.py                          # a tiny run of 3 generations, then the report
    python benchmarks/run_bench.py --bench-size micro --steps 1   # a quick check
    python benchmarks/run_bench.py --run-dir .saemerge/runs/<id>  # report on an existing local run
    python benchmarks/run_bench.py --runners subprocess,warm --steps 1  # the runners side by side

Prints the machine (cores, load average), then from the run's own ``kfp.log`` (kfp.local's
"Executing task" / "Task ... finished" lines) a per-component breakdown of wall time (count,
total, mean, max seconds), and for each evaluate step, from the run's score tables
(``gen-XX/scores-<stage>.parquet``, whose ``fresh`` column marks the (model, example) pairs the
step evaluated itself): the examples scored fresh, the step's throughput (fresh examples per
second of the step's wall time), and the throughput of the same models on the same examples in
ONE warm in-process evaluator built here (the ceiling: no process start, no imports, no S3, the
evaluator and the first model already loaded). ``step/ceiling`` is the share of the ceiling the
step reached; the issue's target is >= 80 %. Last, the process floor: how long a fresh
interpreter takes to import what an evaluate (or merge) step imports and exit, doing no work,
the part of a step's time no change inside the step can remove; and the step floor by runner:
launch to first useful work (and to exit code) of a step importing the same, through the
launcher kfp.local calls, for a fresh process (``subprocess``) and a fork of the warm server.
``--runners`` runs the same run once per runner, one after the other, and prints them side by
side with whether their results rows and model content hashes are identical. A run with the
warm runner also prints the fork server's memory, sampled from /proc while the run goes: the
server's resident set, and each forked step's (its peak, and the pages it does not share with
the server: USS), with the load average at the run's start and end.

The ceiling runs with the thread count the run's evaluate steps used (their "N CPU threads"
log lines; a local run's evaluation takes the cores idle when a step starts) unless
``--threads`` says otherwise. No timed assertions: figures to read and compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from saemerge.pipeline.local_warm import STEP_IMPORTS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_UNTIMED_END = re.compile(r"^\s*\w+:root:Task '([^']+)' finished with status (\w+)")
_LINE = re.compile(
    r"^\s*(\d\d:\d\d:\d\d\.\d{3}) - \w+ - (?:Executing task '([^']+)'|Task '([^']+)' finished with status (\w+))"
)


@dataclass
class Task:
    name: str
    start: float
    end: float | None = None
    status: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def component(self) -> str:
        return re.sub(r"-\d+$", "", self.name)

    @property
    def seconds(self) -> float:
        return (self.end or self.start) - self.start


def machine() -> str:
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cores} cores ({usable} usable), load average {load} (1/5/15 min)"


def _seconds(stamp: str) -> float:
    t = dt.datetime.strptime(stamp, "%H:%M:%S.%f")
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def parse_kfp_log(text: str) -> list[Task]:
    """Every task kfp.local ran, in start order, with the log lines it streamed.

    Timestamps have no date: a time well before the previous one is taken as the next day.
    A task started again (a resumed run appends to the same log) counts as another task.
    kfp.local now and then writes a task's end through the root logger, without a time
    (``INFO:root:Task 'x' finished with status SUCCESS``): that task ends at the next line
    that has one.
    """
    open_: dict[str, list[Task]] = defaultdict(list)  # ParallelFor runs several tasks of one name at once
    done: list[Task] = []
    untimed: list[tuple[str, str]] = []  # (name, status) of ends logged without a time
    day, last = 0.0, 0.0

    def finish(name: str, status: str, now: float) -> None:
        if open_[name]:
            # same-named tasks end first in, first out: the sum of their times is exact, each one's is not
            task = open_[name].pop(0)
            task.end, task.status = now, status
            done.append(task)

    for raw in _ANSI.sub("", text).splitlines():
        m = _LINE.match(raw)
        if not m:
            if u := _UNTIMED_END.match(raw):
                untimed.append((u.group(1), u.group(2)))
                continue
            for ts in open_.values():
                for t in ts:
                    t.lines.append(raw)
            continue
        now = _seconds(m.group(1)) + day
        if now < last - 43200:  # past midnight
            day += 86400.0
            now += 86400.0
        last = now
        for name, status in untimed:
            finish(name, status, now)
        untimed.clear()
        if m.group(2):
            open_[m.group(2)].append(Task(m.group(2), now))
        else:
            finish(m.group(3), m.group(4), now)
    for name, status in untimed:
        finish(name, status, last)
    return sorted(done, key=lambda t: t.start)


def breakdown(tasks: list[Task]) -> str:
    by: dict[str, list[float]] = defaultdict(list)
    for t in tasks:
        by[t.component].append(t.seconds)
    total = sum(sum(v) for v in by.values())
    lines = [f"{'component':<26}{'count':>6}{'total s':>10}{'mean s':>9}{'max s':>9}{'share':>8}"]
    for name, secs in sorted(by.items(), key=lambda kv: -sum(kv[1])):
        lines.append(
            f"{name:<26}{len(secs):>6}{sum(secs):>10.1f}{statistics.mean(secs):>9.2f}{max(secs):>9.2f}"
            f"{sum(secs) / total:>8.0%}"
        )
    lines.append(f"{'all tasks (sequential sum)':<26}{len(tasks):>6}{total:>10.1f}")
    return "\n".join(lines)


_EXEC_TIME = re.compile(r"\[KFP Executor \S+ (\d\d:\d\d:\d\d),(\d{3}) \w+\]: (.*)$")
_SCORED = re.compile(r"\((\d+) evaluated in ([\d.]+) s\)$")


def inside(task: Task) -> tuple[float, float]:
    """(seconds from the step's start to its first model being scored, seconds spent in
    ``Evaluator.score`` calls) from the evaluator's own log lines: the same moment's conditions
    as the step, so their split is robust to a machine whose load changes."""
    first, scoring = None, 0.0
    for line in task.lines:
        m = _EXEC_TIME.search(line)
        if not m:
            continue
        if first is None and m.group(3).startswith("scoring "):
            first = _seconds(f"{m.group(1)}.{m.group(2)}000") % 86400 - task.start % 86400
        if s := _SCORED.search(m.group(3)):
            scoring += float(s.group(2))
    return (first if first is not None else float("nan")), scoring


def executor_input(task: Task) -> dict:
    """The executor input kfp's executor logged for the task ("Got executor_input:" + JSON)."""
    for i, line in enumerate(task.lines):
        if line.rstrip().endswith("Got executor_input:"):
            body = []
            for more in task.lines[i + 1 :]:
                body.append(more)
                if more.strip() == "}" and len(more) - len(more.lstrip()) <= len(body[0]) - len(body[0].lstrip()):
                    try:
                        return json.loads("\n".join(body))
                    except json.JSONDecodeError:
                        return {}
    return {}


def evaluate_steps(tasks: list[Task]) -> list[tuple[Task, int, str, str]]:
    """(task, generation, stage, sample URI) of every evaluate step, from its executor input."""
    out = []
    for t in tasks:
        if t.component == "evaluate":
            p = executor_input(t).get("inputs", {}).get("parameterValues", {})
            if "stage" in p:
                out.append((t, int(p["generation"]), p["stage"], p["sample_uri"]))
    return out


def fresh_work(layout, generation: int, stage: str) -> dict[str, set[tuple[str, str]]]:
    """{content_hash: {(task, example_id)}} the step evaluated itself (``fresh``)."""
    from saemerge import storage
    from saemerge.run.tables import read_table

    uri = layout.scores(generation, stage)
    if not storage.exists(uri):
        return {}
    out: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in read_table(uri).select(["content_hash", "task", "example_id", "fresh"]).to_pylist():
        if r["fresh"]:
            out[r["content_hash"]].add((r["task"], r["example_id"]))
    return dict(out)


def ceiling(layout, steps: list[tuple[Task, int, str, str, dict]], threads: int | None) -> dict[int, float]:
    """Seconds one warm in-process evaluator takes for each step's fresh work, by step index."""
    import torch

    from saemerge import storage
    from saemerge.evaluate.evaluator import Evaluator
    from saemerge.steps.evaluation import read_sample
    from saemerge.util.cpus import EVAL_THREADS_ENV

    if threads:  # as the steps had them
        os.environ[EVAL_THREADS_ENV] = os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    cfg = layout.read_config()
    work = [(i, uri, w) for i, (_, _, _, uri, w) in enumerate(steps) if w]
    if not work:
        return {}
    out: dict[int, float] = {}
    with ExitStack() as stack:
        models: dict[str, Path] = {}  # downloads are not part of the ceiling
        for _, _, w in work:
            for digest in w:
                if digest not in models:
                    models[digest] = stack.enter_context(storage.local_input(layout.model(digest)))
        samples = {}
        for _, uri, _ in work:
            if uri not in samples:
                samples[uri] = read_sample(stack.enter_context(storage.local_input(uri)))
        tasks = sorted({t for s in samples.values() for t in s})
        ev = stack.enter_context(
            Evaluator(
                tasks,
                device=cfg.get("eval_device", "auto"),
                dtype=cfg.get("eval_dtype", "auto"),
                batch_size=cfg.get("eval_batch_size", 16),
            )
        )
        warm = next(iter(work[0][2]))
        ev.score(models[warm], {t: ds[:2] for t, ds in samples[work[0][1]].items()})  # warm-up: load, first batch
        for i, uri, w in work:
            docs = samples[uri]
            start = time.perf_counter()
            for digest, keys in w.items():
                todo = {t: [d for d in ds if (t, str(d["id"])) in keys] for t, ds in docs.items()}
                ev.score(models[digest], {t: ds for t, ds in todo.items() if ds})
            out[i] = time.perf_counter() - start
    return out


#: The kinds of step whose floors are measured; what each imports is the warm runner's list.
FLOOR_STEPS = ("evaluate", "pair-and-merge")


def process_floor(modules: tuple[str, ...], repeats: int = 3) -> tuple[float, float]:
    """(median seconds of a fresh interpreter that imports `modules` and exits, median seconds of
    the imports alone): what a step pays before its first piece of work, whatever it does."""
    code = "import importlib, time\nt = time.perf_counter()\n"
    code += "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "print(time.perf_counter() - t)\n"
    walls, imports = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - start)
        imports.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(walls), statistics.median(imports)


def floors() -> str:
    lines = [
        "\nprocess floor (a fresh interpreter importing what the step imports, then exiting; median of 3)",
        f"{'step':<16}{'process s':>10}{'imports s':>10}",
    ]
    for step in FLOOR_STEPS:
        wall, imports = process_floor(STEP_IMPORTS[step])
        lines.append(f"{step:<16}{wall:>10.1f}{imports:>10.1f}")
    return "\n".join(lines)


def _launch(modules: tuple[str, ...], out_dir: Path) -> list[str]:
    """kfp's command for a step that imports `modules`, prints when it got there, and returns."""
    from kfp.local import subprocess_task_handler

    body = "".join(f"    importlib.import_module({m!r})\n" for m in modules)
    source = f"def floor():\n    import importlib, time\n{body}    print('READY', time.time(), flush=True)\n"
    script = (
        "program_path=$(mktemp -d)\n"
        'printf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
        "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path "
        '"$program_path/ephemeral_component.py" "$@"\n'
    )
    executor_input = json.dumps({"inputs": {}, "outputs": {"outputFile": str(out_dir / "executor_output.json")}})
    command = ["sh", "-ec", script, source, "--executor_input", executor_input, "--function_to_execute", "floor"]
    return subprocess_task_handler.replace_python_executable(command, sys.executable)


def _timed_launch(run, command: list[str]) -> tuple[float, float]:
    """(seconds from the launch to the step's first useful work, seconds to its exit code)."""
    import contextlib
    import io

    out = io.StringIO()
    start = time.time()
    with contextlib.redirect_stdout(out):
        code = run(command, {})
    done = time.time()
    ready = [float(line.split()[1]) for line in out.getvalue().splitlines() if line.startswith("READY ")]
    if code != 0 or not ready:
        raise SystemExit(f"runner floor: the step failed (exit {code}):\n{out.getvalue()[-2000:]}")
    return ready[0] - start, done - start


def runner_floors(repeats: int = 3) -> str:
    """Per step kind and runner: launch to first useful work (the step's imports done), and launch
    to exit code, median of `repeats`, through the very launcher kfp.local calls (subprocess: kfp's
    own ``run_local_subprocess``; warm: the fork server, once it has imported the steps' code)."""
    import tempfile

    import psutil
    from kfp.local import subprocess_task_handler

    from saemerge.pipeline.local_warm import ForkServer

    plain = subprocess_task_handler.run_local_subprocess
    server = ForkServer()
    try:
        out_dir = Path(tempfile.mkdtemp())
        _timed_launch(server.run, _launch(STEP_IMPORTS["evaluate"], out_dir))  # the server finishes importing
        proc, before = psutil.Process(server.proc.pid), None
        while before != proc.cpu_times():
            before = proc.cpu_times()
            time.sleep(1.0)
        lines = [
            f"\nstep floor by runner (launch -> imports done / -> exit code; median of {repeats})",
            f"{'step':<16}{'runner':<12}{'first work s':>13}{'exit s':>8}",
        ]
        for step in FLOOR_STEPS:
            command = _launch(STEP_IMPORTS[step], out_dir)
            for name, run in (("subprocess", plain), ("warm", server.run)):
                times = [_timed_launch(run, command) for _ in range(repeats)]
                first, total = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
                lines.append(f"{step:<16}{name:<12}{first:>13.2f}{total:>8.2f}")
        return "\n".join(lines)
    finally:
        server.close()


def report(run_dir: Path, workdir: Path, threads: int | None, with_ceiling: bool) -> None:
    from saemerge.cli.pipeline import local_store_if_needed
    from saemerge.run.layout import RunLayout

    tasks = parse_kfp_log((run_dir / "kfp.log").read_text(errors="replace"))
    if not tasks:
        raise SystemExit(f"{run_dir / 'kfp.log'}: no finished kfp.local tasks in the log")
    args = json.loads((run_dir / "arguments.json").read_text())
    run_uri = args["run_uri"]
    wall = max(t.end for t in tasks) - min(t.start for t in tasks)
    print(f"\nrun {run_uri} ({run_dir})")
    print(f"pipeline wall time (first task start to last task end): {wall:.1f} s\n")
    print(breakdown(tasks))
    gens = [t for t in tasks if t.component == "sae-generation"]
    if gens:
        secs = [t.seconds for t in gens]
        print(
            f"\ngenerations: {len(secs)}, mean {statistics.mean(secs):.1f} s, min {min(secs):.1f} s, "
            f"max {max(secs):.1f} s"
        )

    with local_store_if_needed(run_uri, workdir / "store"):
        layout = RunLayout(run_uri)
        steps = [(t, g, s, uri, fresh_work(layout, g, s)) for t, g, s, uri in evaluate_steps(tasks)]
        ceil = ceiling(layout, steps, threads) if with_ceiling else {}
    print(
        "\nevaluate steps, inside (from the evaluator's log): start = step start to the first model scored "
        "(process, imports, evaluator, downloads); score = in Evaluator.score; rest = the remainder"
    )
    print(f"{'generation':<11}{'stage':<10}{'step s':>8}{'start s':>9}{'score s':>9}{'rest s':>8}{'score/step':>11}")
    sums = [0.0, 0.0, 0.0]
    for t, g, s, _, w in steps:
        if not w:
            continue
        start, scoring = inside(t)
        rest = t.seconds - start - scoring
        sums = [sums[0] + t.seconds, sums[1] + start, sums[2] + scoring]
        print(
            f"{('init' if g < 0 else g)!s:<11}{s:<10}{t.seconds:>8.1f}{start:>9.1f}{scoring:>9.1f}{rest:>8.1f}"
            f"{scoring / t.seconds:>11.0%}"
        )
    if sums[0]:
        print(
            f"{'all':<21}{sums[0]:>8.1f}{sums[1]:>9.1f}{sums[2]:>9.1f}{sums[0] - sums[1] - sums[2]:>8.1f}"
            f"{sums[2] / sums[0]:>11.0%}"
        )
    print(f"\nevaluate steps (ceiling: one warm in-process evaluator, {threads or 'default'} torch threads)")
    print(
        f"{'generation':<11}{'stage':<10}{'models':>7}{'fresh':>7}{'step s':>8}{'ex/s':>8}"
        f"{'ceil s':>8}{'ceil ex/s':>10}{'step/ceil':>10}"
    )
    tot_n = tot_s = tot_c = 0.0
    for i, (t, g, s, _, w) in enumerate(steps):
        n = sum(map(len, w.values()))
        c = ceil.get(i)
        rate = n / t.seconds if t.seconds else float("nan")
        crate = n / c if c else float("nan")
        print(
            f"{('init' if g < 0 else g)!s:<11}{s:<10}{len(w):>7}{n:>7}{t.seconds:>8.1f}{rate:>8.1f}"
            f"{(c or float('nan')):>8.1f}{crate:>10.1f}{(rate / crate if c else float('nan')):>10.0%}"
        )
        tot_n += n
        tot_s += t.seconds
        tot_c += c or 0.0
    if tot_n:
        rate, crate = tot_n / tot_s, (tot_n / tot_c if tot_c else float("nan"))
        print(
            f"{'all':<21}{'':>7}{int(tot_n):>7}{tot_s:>8.1f}{rate:>8.1f}{tot_c:>8.1f}{crate:>10.1f}"
            f"{(rate / crate if tot_c else float('nan')):>10.0%}"
        )
    print(floors())
    print(runner_floors())
    print(f"\nmachine: {machine()}")


def run_local(args: argparse.Namespace, runner: str | None = None, run_id: str | None = None) -> Path:
    run_id = run_id or args.run_id or time.strftime("bench-%Y%m%d-%H%M%S")
    cmd = [
        str(Path(sys.executable).with_name("saemerge")),
        "run",
        "--local",
        "--run-id",
        run_id,
        "--bench-size",
        args.bench_size,
        "--steps",
        str(args.steps),
        "--workdir",
        str(args.workdir),
    ]
    for p in args.param or []:
        cmd += ["--param", p]
    if runner:
        cmd += ["--runner", runner]
    print(f"machine: {machine()}\n$ {' '.join(cmd)}", flush=True)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    proc = subprocess.Popen(cmd)
    with ForkServerMemory(proc.pid) as memory:
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
    print(f"saemerge run --local: {time.perf_counter() - start:.1f} s wall", flush=True)
    if memory.server:
        print(memory.summary(load0, os.getloadavg()[0]), flush=True)
    return args.workdir / "runs" / run_id


MIB = 1 << 20


class ForkServerMemory:
    """Samples the warm runner's fork server and its forked steps from /proc while a run goes.

    The server is the descendant of `root` running ``saemerge.pipeline.local_warm``; a step is a
    child of the server (a fork: same command line). Per process: the peak resident set (the
    kernel's high-water mark, ``VmHWM``: not missed between samples) and the largest USS seen
    (pages it alone maps: for a step, what its fork costs beyond the pages it shares with the
    server). Sampling reads smaps (a few ms per process) every `interval` seconds.
    """

    def __init__(self, root: int, interval: float = 0.5) -> None:
        import threading

        self.root, self.interval = root, interval
        self.server: dict[str, float] = {}
        self.steps: dict[int, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> ForkServerMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _measure(proc, seen: dict[str, float]) -> None:
        with proc.oneshot():
            hwm = _status_kib(proc.pid, "VmHWM") * 1024
            uss = proc.memory_full_info().uss
        seen["peak_rss"] = max(seen.get("peak_rss", 0.0), hwm)
        seen["uss"] = max(seen.get("uss", 0.0), uss)

    def _sample_until_stopped(self) -> None:
        import psutil

        while not self._stop.wait(self.interval):
            try:
                found = psutil.Process(self.root).children(recursive=True)
            except psutil.Error:
                continue
            servers = [p for p in found if _is_fork_server(p) and not _is_fork_server(_parent(p))]
            for server in servers[:1]:
                try:
                    self._measure(server, self.server)
                    for child in server.children():
                        self._measure(child, self.steps.setdefault(child.pid, {}))
                except psutil.Error:  # a step ended between the listing and the read
                    continue

    def summary(self, load0: float, load1: float) -> str:
        lines = [
            f"\nwarm fork server memory (/proc every {self.interval:g} s during the run; load {load0:.1f} -> {load1:.1f})",
            f"{'process':<24}{'n':>4}{'peak RSS MiB':>14}{'USS MiB':>10}",
            f"{'server':<24}{1:>4}{self.server['peak_rss'] / MIB:>14.0f}{self.server['uss'] / MIB:>10.0f}",
        ]
        if self.steps:
            rss = sorted(x["peak_rss"] for x in self.steps.values())
            uss = sorted(x["uss"] for x in self.steps.values())
            n = len(rss)
            lines.append(
                f"{'step, median':<24}{n:>4}{statistics.median(rss) / MIB:>14.0f}{statistics.median(uss) / MIB:>10.0f}"
            )
            lines.append(f"{'step, largest':<24}{n:>4}{rss[-1] / MIB:>14.0f}{uss[-1] / MIB:>10.0f}")
        lines.append("(RSS of a step counts the pages it shares with the server; USS only its own)")
        return "\n".join(lines)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _is_fork_server(proc) -> bool:
    try:
        return proc is not None and "saemerge.pipeline.local_warm" in proc.cmdline()
    except Exception:  # psutil.Error: gone
        return False


def _parent(proc):
    try:
        return proc.parent()
    except Exception:  # psutil.Error: gone
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", type=Path, help="report on this existing local run (.saemerge/runs/<id>)")
    p.add_argument("--bench-size", default="tiny", help="bench of the new run: tiny (default) or micro")
    p.add_argument("--steps", type=int, default=3, help="generations of the new run (default 3)")
    p.add_argument("--param", action="append", help="NAME=VALUE passed to saemerge run (repeatable)")
    p.add_argument("--run-id", help="id of the new run (default bench-<time>)")
    p.add_argument("--workdir", type=Path, default=Path(".saemerge"), help="the local runs' directory")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the ceiling (default: what the run's evaluate steps used)",
    )
    p.add_argument("--no-ceiling", action="store_true", help="skip the in-process ceiling")
    p.add_argument(
        "--runners",
        help="comma-separated runners (e.g. subprocess,warm): the same run once per runner, one after the "
        "other, then the runs side by side and whether their results and models are identical",
    )
    args = p.parse_args()
    if args.runners:
        compare_runners(args, args.runners.split(","))
        return
    run_dir = args.run_dir or run_local(args)
    report(run_dir, args.workdir, args.threads or step_threads(run_dir), not args.no_ceiling)


def run_outcome(workdir: Path, run_dir: Path) -> list[str]:
    """The run's results rows and the content hashes of every model it made, run id left out:
    what two runs of the same configuration must share line for line."""
    from saemerge import storage
    from saemerge.cli.pipeline import local_store_if_needed
    from saemerge.run.layout import RunLayout

    run_uri = json.loads((run_dir / "arguments.json").read_text())["run_uri"]
    with local_store_if_needed(run_uri, workdir / "store"):
        layout = RunLayout(run_uri)
        rows = [json.dumps(r, sort_keys=True).replace(run_uri, "RUN") for r in layout.read_results()]
        models = {u.split("/models/")[1].split("/")[0] for u in storage.list_uris(layout.model(""))}
    return rows + sorted(models)


def generation_times(tasks: list[Task]) -> list[float]:
    """Seconds of each generation: from one archive update's end to the next one's (kfp.local
    logs no line for a nested pipeline; the first archive update builds the initial archive)."""
    ends = sorted(t.end for t in tasks if t.component in ("archive-update", "m2n2-update", "pso-update") and t.end)
    return [b - a for a, b in zip(ends, ends[1:])]


def compare_runners(args: argparse.Namespace, runners: list[str]) -> None:
    """The same run under each runner, then side by side: wall time, generations, the evaluate and
    merge steps (kfp.local's task times), the step floor by runner, and identical outcomes."""
    stamp = args.run_id or time.strftime("bench-%Y%m%d-%H%M%S")
    runs = {}
    for runner in runners:
        start, load0 = time.perf_counter(), os.getloadavg()[0]
        run_dir = run_local(args, runner, f"{stamp}-{runner}")
        runs[runner] = (run_dir, time.perf_counter() - start, load0, os.getloadavg()[0])
    lines = [
        "\nrunners side by side (same machine, one after the other)",
        f"{'runner':<12}{'run s':>8}{'load':>12}{'gens':>5}{'gen mean s':>11}{'gen min s':>10}{'gen max s':>10}"
        f"{'eval mean s':>12}{'merge mean s':>13}{'tasks':>7}",
    ]
    for runner, (run_dir, wall, load0, load1) in runs.items():
        tasks = parse_kfp_log((run_dir / "kfp.log").read_text(errors="replace"))
        gens = generation_times(tasks) or [float("nan")]
        evals = [t.seconds for t in tasks if t.component == "evaluate"] or [float("nan")]
        merges = [t.seconds for t in tasks if t.component == "pair-and-merge"] or [float("nan")]
        lines.append(
            f"{runner:<12}{wall:>8.1f}{f'{load0:.1f}->{load1:.1f}':>12}{len(gens):>5}{statistics.mean(gens):>11.1f}"
            f"{min(gens):>10.1f}{max(gens):>10.1f}{statistics.mean(evals):>12.2f}{statistics.mean(merges):>13.2f}"
            f"{len(tasks):>7}"
        )
    print("\n".join(lines))
    outcomes = {runner: run_outcome(args.workdir, run_dir) for runner, (run_dir, *_) in runs.items()}
    first = next(iter(outcomes.values()))
    same = all(o == first for o in outcomes.values())
    print(
        f"\nresults and model content hashes: {'identical' if same else 'DIFFERENT'} across {', '.join(runners)} "
        f"({len(first)} lines: results rows and models)"
    )
    print(runner_floors())
    print(f"\nmachine: {machine()}")


def step_threads(run_dir: Path) -> int | None:
    """The CPU thread count the run's evaluate steps used most (their "loading ... (N CPU threads)" lines)."""
    counts = Counter(re.findall(r"\((\d+) CPU threads\)", (run_dir / "kfp.log").read_text(errors="replace")))
    return int(counts.most_common(1)[0][0]) if counts else None


if __name__ == "__main__":
    main()
