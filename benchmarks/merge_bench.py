#!/usr/bin/env python
"""Wall time and peak RSS of saemerge's streamed operations beside mergekit's.

Builds a base and two experts (~``--params`` parameters each, LLaMA architecture, safetensors,
``--dtype`` float32 by default), then runs each operation as its own subprocess and reports its
wall time, CPU time and peak RSS:

* ``saemerge prune`` (delta space, ``--sparsity``), ``saemerge merge --method sae``,
  ``saemerge merge --method ties`` (density 0.2) and ``--method linear``;
* the same TIES and linear merges with mergekit (``mergekit-yaml ... --lazy-unpickle``), run from
  its own virtual environment (``--mergekit PATH``; created there on first use with the CPU torch
  wheel installed first, so pip does not pull CUDA). mergekit is never a dependency of saemerge.

Peak RSS is the kernel's high-water mark of the child (``os.wait4``'s ``ru_maxrss``); a poller
also samples ``/proc/PID/status`` to split it into anonymous memory and file-backed pages (the
safetensors mmaps). Baselines are the RSS of an interpreter that only imports torch and
safetensors (and mergekit's stack, in its venv), so the targets can be checked:

* peak RSS of every saemerge operation <= baseline + half of one checkpoint;
* saemerge's wall time <= mergekit's for the same merge (TIES, linear).

The outputs of both tools are then compared tensor by tensor (max abs difference, and for TIES
which differing entries come from the two documented differences of semantics), since a timing
is only worth comparing when the merges agree.

Reading the figures: "file MB" is file-backed RSS (shared libraries, ~117 MB, plus the pages of
mmapped safetensors a process has touched and still maps); "anon MB" is its own memory. On a
machine whose cores are shared with other work, torch's default intra-op thread count (all
cores) makes the many small elementwise kernels wait on descheduled OpenMP threads; ``--threads
1`` gives both tools the same single thread and much steadier timings. Compare "cpu s" too.

Usage::

    python benchmarks/merge_bench.py                       # 100M params, float32, 1 run each
    python benchmarks/merge_bench.py --repeat 3 --dtype bfloat16 --threads 2
    python benchmarks/merge_bench.py --skip-mergekit --params 20M --keep --workdir /tmp/mb
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from saemerge.util.units import parse_size

if TYPE_CHECKING:
    import torch  # annotations only: this launcher stays torch-free, its workers import torch

MB = 1e6
VOCAB = 32000
MERGEKIT_SPEC = "mergekit==0.1.5"
DEFAULT_MERGEKIT_VENV = Path(tempfile.gettempdir()) / "mergekit-venv"


# ----------------------------------------------------------------------------- measuring


@dataclass
class Run:
    """One measured subprocess."""

    wall: float
    cpu: float
    peak_rss: float  # bytes, kernel high-water mark
    peak_anon: float  # bytes, sampled
    peak_file: float  # bytes, sampled (file-backed pages: mmapped inputs)
    rc: int
    tail: str = ""


def _proc_rss(pid: int) -> tuple[int, int]:
    """(RssAnon, RssFile) of one process in bytes; (0, 0) once it is gone."""
    anon = file = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
                elif line.startswith("RssFile:"):
                    file = int(line.split()[1]) * 1024
    except OSError:
        pass
    return anon, file


def _tree(pid: int) -> list[int]:
    """pid and its descendants (via /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def measure(cmd: list[str], env: dict[str, str], log: Path, interval: float = 0.02) -> Run:
    """Run `cmd` to completion; its wall/CPU time and peak RSS (output goes to `log`)."""
    peaks = {"anon": 0, "file": 0}
    done = threading.Event()
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)

        def poll() -> None:
            while not done.is_set():
                anon = file = 0
                for p in _tree(proc.pid):
                    a, f = _proc_rss(p)
                    anon, file = anon + a, file + f
                peaks["anon"] = max(peaks["anon"], anon)
                peaks["file"] = max(peaks["file"], file)
                done.wait(interval)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    tail = log.read_text(errors="replace")[-2000:]
    return Run(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss * 1024.0,
        peaks["anon"],
        peaks["file"],
        proc.returncode,
        tail,
    )


def summarise(runs: list[Run], stat: str) -> Run:
    """The best (lowest wall) or the median of each figure over the repeats."""
    if stat == "best":
        return min(runs, key=lambda r: r.wall)
    med = statistics.median
    return Run(
        med(r.wall for r in runs),
        med(r.cpu for r in runs),
        med(r.peak_rss for r in runs),
        med(r.peak_anon for r in runs),
        med(r.peak_file for r in runs),
        runs[-1].rc,
    )


# ----------------------------------------------------------------------------- checkpoints


def parse_count(text: str) -> int:
    """'100M', '1.5B', '20k' or a plain number -> parameter count."""
    t = text.strip().upper()
    mult = {"K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def choose_shape(params: int) -> dict:
    """Hidden size, layers and vocab of a LLaMA with about `params` parameters.

    Every hidden size is a multiple of 5 so each tensor's 0.2·numel is an integer: mergekit keeps
    floor(density·n) entries and saemerge ceil(density·n), which then coincide.
    """
    hidden = 320 if params <= 30e6 else 640 if params <= 300e6 else 1280 if params <= 1.5e9 else 2560
    inter = hidden * 43 // 16  # ~2.69x, LLaMA-like
    kv = hidden // 2  # tests.support.tinymodels.llama_config: 4 heads, 2 KV heads
    vocab = VOCAB
    while vocab > 1000 and 2 * vocab * hidden > params / 2:  # embeddings at most half the model
        vocab //= 2
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter + 2 * hidden
    layers = max(1, round((params - 2 * vocab * hidden - hidden) / per_layer))
    total = 2 * vocab * hidden + hidden + layers * per_layer
    return {"hidden": hidden, "intermediate": inter, "layers": layers, "vocab": vocab, "params": total}


def build_family(root: Path, shape: dict, dtype_name: str, seed: int = 0) -> dict[str, Path]:
    """Write base, expert0, expert1 under `root` (reused when `root/spec.json` matches).

    Weights are seeded N(0, 0.02) (norms 1); each expert adds a dense seeded task vector of
    std 0.002, the size of a fine-tuning update. Safetensors are written directly (one file,
    as HF saves a model of this size) with the config and a tiny tokenizer beside them.
    """
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.support
    from tests.support.tinymodels import llama_config, write_tokenizer

    spec = {**shape, "dtype": dtype_name, "seed": seed, "version": 2}
    paths = {k: root / k for k in ("base", "expert0", "expert1")}
    spec_file = root / "spec.json"
    if (
        spec_file.is_file()
        and json.loads(spec_file.read_text()) == spec
        and all((p / "model.safetensors").is_file() for p in paths.values())
    ):
        return paths
    shutil.rmtree(root, ignore_errors=True)
    dtype = getattr(torch, dtype_name)
    config = llama_config(shape["vocab"], shape["hidden"], shape["layers"], shape["intermediate"])
    config.dtype = dtype_name
    config.architectures = ["LlamaForCausalLM"]  # mergekit picks its architecture table from this
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in LlamaForCausalLM(config).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    base = {}
    for name, shp in shapes.items():
        t = torch.ones(shp) if name.endswith("norm.weight") else torch.randn(shp, generator=gen) * 0.02
        base[name] = t.to(dtype)
    for key, path in paths.items():
        path.mkdir(parents=True)
        if key == "base":
            sd = base
        else:
            g = torch.Generator().manual_seed(seed + 1000 + int(key[-1]))
            sd = {n: (w.float() + torch.randn(w.shape, generator=g) * 0.002).to(dtype) for n, w in base.items()}
        save_file(sd, str(path / "model.safetensors"), metadata={"format": "pt"})
        del sd
        config.save_pretrained(str(path))
        write_tokenizer(path, vocab_size=256)
    spec_file.write_text(json.dumps(spec))
    return paths


def weights_bytes(ckpt: Path) -> int:
    return sum(p.stat().st_size for p in ckpt.glob("*.safetensors"))


# ----------------------------------------------------------------------------- mergekit


def find_mergekit(path: Path) -> Path | None:
    """The mergekit-yaml executable at `path` (a venv or the executable itself), or None."""
    exe = path if path.is_file() else path / "bin" / "mergekit-yaml"
    return exe if exe.is_file() and os.access(exe, os.X_OK) else None


def install_mergekit(venv: Path, spec: str) -> Path:
    """Create `venv` and install the CPU torch wheel this interpreter uses, then mergekit."""
    torch_pin = "torch==" + torch_info()["version"].split("+")[0]
    print(f"# installing {spec} into {venv} ({torch_pin} first, CPU build)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [torch_pin], check=True)
    subprocess.run(pip + [spec], check=True)
    exe = find_mergekit(venv)
    if exe is None:
        raise RuntimeError(f"{venv}: mergekit-yaml missing after installing {spec}")
    return exe


def torch_info() -> dict:
    """torch's version and default thread count, asked of a child: this process stays torch-free."""
    code = "import json, torch; print(json.dumps({'version': torch.__version__, 'threads': torch.get_num_threads()}))"
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def in_worker(*argv: str, env: dict[str, str] | None = None) -> dict:
    """Run this script's `_worker` mode in a child and return the JSON it prints.

    Building checkpoints and comparing outputs need torch; doing them here would leave this
    process large, and a child's ru_maxrss starts at its parent's RSS at fork time (the kernel
    carries the forked mm's high-water mark across exec), which would inflate every figure.
    """
    res = subprocess.run([sys.executable, __file__, "_worker", *argv], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"worker {argv[0]} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def mergekit_version(exe: Path) -> str:
    py = exe.parent / "python"
    code = "import importlib.metadata as m; print(m.version('mergekit'))"
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    return res.stdout.strip() or "unknown"


def mergekit_config(method: str, paths: dict[str, Path], density: float, dtype_name: str) -> dict:
    """A mergekit config that computes what saemerge's method computes.

    TIES: mergekit's ``normalize: true`` (its default for ties) divides the sign-agreeing sum by
    the agreeing weights, which is saemerge's disjoint mean; weights 1, lambda 1 = alpha 1.
    Linear: equal weights, normalised. Both compute in float32 and write the input dtype, as
    saemerge does.
    """
    experts = [paths["expert0"], paths["expert1"]]
    if method == "ties":
        cfg = {
            "merge_method": "ties",
            "base_model": str(paths["base"]),
            "models": [{"model": str(p), "parameters": {"density": density, "weight": 1.0}} for p in experts],
            "parameters": {"normalize": True, "lambda": 1.0},
        }
    else:
        cfg = {
            "merge_method": "linear",
            "models": [{"model": str(p), "parameters": {"weight": 1.0}} for p in experts],
            "parameters": {"normalize": True},
        }
    cfg["dtype"] = "float32"
    cfg["out_dtype"] = dtype_name
    return cfg


# ----------------------------------------------------------------------------- agreement


def _tensor_files(ckpt: Path) -> dict[str, Path]:
    from safetensors import safe_open

    out = {}
    for f in sorted(ckpt.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            out.update({k: f for k in h.keys()})
    return out


def _explain_ties(name: str, where: torch.Tensor, ties: dict) -> tuple[int, int, int]:
    """Classify the TIES entries `where` (flat indices) at which the two tools differ.

    Two documented differences of semantics, not errors:

    * trim-threshold ties: an expert's |τ| there equals its k-th largest magnitude and several
      entries share it; saemerge keeps the lowest flat indices (SAE-SPEC §1), mergekit whatever
      its non-stable argsort returns (benchmarks/ties_vs_mergekit.py shows this is the whole
      difference on SmolLM2-135M);
    * zero-sum sign election: both trimmed task vectors are kept there and cancel exactly. Both
      tools now elect + there (saemerge since 91daec9), so this count should be 0.

    Both tools keep k = max(1, int(density·n)) entries (mergekit's count, saemerge's
    ``_density_keep``).

    Returns:
        (at trim ties, at zero-sum elections, explained by either).
    """
    import torch
    from safetensors import safe_open

    def get(ckpt: str):
        files = _tensor_files(Path(ckpt))
        with safe_open(str(files[name]), framework="pt") as h:
            return h.get_tensor(name).float().reshape(-1)

    base = get(ties["base"])
    at_tie = torch.zeros(where.numel(), dtype=torch.bool)
    kept_by_all = torch.ones(where.numel(), dtype=torch.bool)
    total = torch.zeros(where.numel())
    nonzero = torch.ones(where.numel(), dtype=torch.bool)
    for e in ties["experts"]:
        delta = get(e) - base
        mag = delta.abs()
        k = max(1, int(ties["density"] * mag.numel()))
        thr = torch.topk(mag, k).values[-1] if k < mag.numel() else torch.tensor(0.0)
        if k < mag.numel() and int((mag == thr).sum()) > 1:
            at_tie |= mag[where] == thr
        kept_by_all &= mag[where] >= thr
        total += delta[where]
        nonzero &= delta[where] != 0
    zero_sum = kept_by_all & nonzero & (total == 0)
    return int(at_tie.sum()), int(zero_sum.sum()), int((at_tie | zero_sum).sum())


def compare_outputs(a: Path, b: Path, ties: dict | None = None) -> dict:
    """Tensor-by-tensor agreement of two checkpoints: max |a-b| and how many entries differ.

    With `ties` ({"base", "experts", "density"}) the differing entries are also checked against
    TIES' documented differences (see :func:`_explain_ties`).
    """
    import torch
    from safetensors import safe_open

    fa, fb = _tensor_files(a), _tensor_files(b)
    explained = [0, 0, 0]
    common = sorted(set(fa) & set(fb))
    worst, worst_name, differing, total, equal_tensors, dtypes = 0.0, "", 0, 0, 0, set()
    for name in common:
        with safe_open(str(fa[name]), framework="pt") as ha, safe_open(str(fb[name]), framework="pt") as hb:
            x, y = ha.get_tensor(name), hb.get_tensor(name)
        dtypes.add(f"{str(x.dtype).removeprefix('torch.')}/{str(y.dtype).removeprefix('torch.')}")
        if x.shape != y.shape:
            return {"error": f"tensor {name}: shapes {tuple(x.shape)} vs {tuple(y.shape)}"}
        d = (x.float() - y.float()).abs()
        n = int((d > 0).sum())
        differing += n
        if n and ties is not None:
            got = _explain_ties(name, torch.nonzero(d.reshape(-1) > 0).reshape(-1), ties)
            explained = [e + g for e, g in zip(explained, got)]
        total += d.numel()
        equal_tensors += n == 0
        m = float(d.max()) if d.numel() else 0.0
        if m > worst:
            worst, worst_name = m, name
    return {
        "tensors": len(common),
        "only_in_first": sorted(set(fa) - set(fb)),
        "only_in_second": sorted(set(fb) - set(fa)),
        "bit_equal_tensors": equal_tensors,
        "differing_entries": differing,
        "differing_at_trim_ties": explained[0] if ties is not None else None,
        "differing_at_zero_sum_election": explained[1] if ties is not None else None,
        "differing_unexplained": differing - explained[2] if ties is not None else None,
        "entries": total,
        "max_abs_diff": worst,
        "worst_tensor": worst_name,
        "dtypes": sorted(dtypes),
    }


# ----------------------------------------------------------------------------- the benchmark


@dataclass
class Op:
    """One measured operation: a label, the tool and its command line (output dir last)."""

    name: str
    tool: str
    cmd: list[str]
    out: Path
    pair: str = ""  # the other tool's op computing the same thing, for the wall-time target
    runs: list[Run] = field(default_factory=list)


def saemerge_ops(paths: dict[str, Path], outdir: Path, args) -> list[Op]:
    py = [sys.executable, "-m", "saemerge"]
    shard = ["--max-shard-size", args.shard_size]
    e0, e1, base = (str(paths[k]) for k in ("expert0", "expert1", "base"))
    ops = {
        "prune": Op(
            "prune",
            "saemerge",
            py + ["prune", e0, "--base", base, "--sparsity", str(args.sparsity)] + shard,
            outdir / "sm-prune",
        ),
        "sae": Op(
            "merge sae",
            "saemerge",
            py
            + [
                "merge",
                "--method",
                "sae",
                "--models",
                e0,
                e1,
                "--base",
                base,
                "--scores",
                "0.6",
                "0.4",
                "--sparsity",
                str(args.sparsity),
            ]
            + shard,
            outdir / "sm-sae",
        ),
        "ties": Op(
            "merge ties",
            "saemerge",
            py
            + ["merge", "--method", "ties", "--models", e0, e1, "--base", base, "--density", str(args.density)]
            + shard,
            outdir / "sm-ties",
            pair="mk-ties",
        ),
        "linear": Op(
            "merge linear",
            "saemerge",
            py + ["merge", "--method", "linear", "--models", e0, e1] + shard,
            outdir / "sm-linear",
            pair="mk-linear",
        ),
    }
    for op in ops.values():
        op.cmd += ["--out", str(op.out)]
    return [ops[k] for k in args.ops if k in ops]


def mergekit_ops(exe: Path, paths: dict[str, Path], outdir: Path, args) -> list[Op]:
    ops = []
    for method in ("ties", "linear"):
        if method not in args.ops:
            continue
        cfg = outdir / f"mergekit-{method}.yml"
        # JSON is YAML: no pyyaml needed on this side.
        cfg.write_text(json.dumps(mergekit_config(method, paths, args.density, args.dtype), indent=1))
        out = outdir / f"mk-{method}"
        cmd = [
            str(exe),
            str(cfg),
            str(out),
            "--lazy-unpickle",
            "--quiet",
            "--device",
            "cpu",
            "--out-shard-size",
            str(parse_size(args.shard_size, what="--shard-size")),
        ]
        if args.threads:
            cmd += ["--num-threads", str(args.threads)]
        ops.append(Op(f"merge {method}", "mergekit", cmd, out, pair=f"sm-{method}"))
    return ops


def child_env(args) -> dict[str, str]:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(args.threads)
    return env


def warm_cache(paths: dict[str, Path]) -> None:
    """Read the inputs once so every tool starts from the page cache, not the disk."""
    for p in paths.values():
        for f in p.glob("*.safetensors"):
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass


def run_ops(ops: list[Op], env: dict[str, str], logs: Path, repeat: int) -> None:
    """Every op `repeat` times, interleaved so a busy spell on the shared CPU hits all tools alike."""
    for r in range(repeat):
        for op in ops:
            shutil.rmtree(op.out, ignore_errors=True)
            run = measure(op.cmd, env, logs / f"{op.tool}-{op.name.replace(' ', '-')}-{r}.log")
            op.runs.append(run)
            status = "ok" if run.rc == 0 else f"FAILED rc={run.rc}"
            print(
                f"#  run {r + 1}/{repeat} {op.tool:9s} {op.name:13s} {run.wall:7.2f} s  "
                f"{run.peak_rss / MB:8.1f} MB  {status}",
                flush=True,
            )
            if run.rc != 0:
                print("#  " + run.tail.replace("\n", "\n#  "), flush=True)


def baseline(cmd: list[str], env: dict[str, str], logs: Path, name: str, repeat: int) -> Run:
    runs = [measure(cmd, env, logs / f"baseline-{name}-{i}.log") for i in range(max(1, repeat))]
    return min(runs, key=lambda r: r.peak_rss)


def print_table(rows: list[tuple], header: tuple) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    print(fmt.format(*header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(fmt.format(*row))


def report(ops: list[Op], bases: dict[str, Run], ckpt_bytes: int, stat: str) -> dict:
    """Print the table and the verdicts; return the figures (also written as JSON)."""
    summary = {op.tool + ":" + op.name: summarise(op.runs, stat) for op in ops if op.runs}
    header = (
        "operation",
        "tool",
        "wall s",
        "cpu s",
        "peak RSS MB",
        "anon MB",
        "file MB",
        "above baseline MB",
        "checkpoint MB",
        "RSS range MB",
    )
    rows = []
    for label, b in bases.items():
        rows.append(
            (
                f"baseline ({label})",
                label.split(":")[0],
                f"{b.wall:.2f}",
                f"{b.cpu:.2f}",
                f"{b.peak_rss / MB:.1f}",
                f"{b.peak_anon / MB:.1f}",
                f"{b.peak_file / MB:.1f}",
                "-",
                "-",
                "-",
            )
        )
    for op in ops:
        if not op.runs:
            continue
        s = summary[op.tool + ":" + op.name]
        ref = bases["saemerge: import torch, safetensors" if op.tool == "saemerge" else "mergekit: import its stack"]
        rows.append(
            (
                op.name,
                op.tool,
                f"{s.wall:.2f}",
                f"{s.cpu:.2f}",
                f"{s.peak_rss / MB:.1f}",
                f"{s.peak_anon / MB:.1f}",
                f"{s.peak_file / MB:.1f}",
                f"{(s.peak_rss - ref.peak_rss) / MB:.1f}",
                f"{ckpt_bytes / MB:.1f}",
                f"{min(r.peak_rss for r in op.runs) / MB:.0f}-{max(r.peak_rss for r in op.runs) / MB:.0f}",
            )
        )
    print()
    print_table(rows, header)
    print()
    verdicts = []
    torch_base = bases["saemerge: import torch, safetensors"].peak_rss
    limit = torch_base + ckpt_bytes / 2
    by_key = {("sm-" if op.tool == "saemerge" else "mk-") + op.name.split()[-1]: op for op in ops if op.runs}
    for op in ops:
        if op.tool != "saemerge" or not op.runs:
            continue
        s = summary["saemerge:" + op.name]
        ok = s.peak_rss <= limit and all(r.rc == 0 for r in op.runs)
        verdicts.append(
            f"RSS  {op.name:13s} {'PASS' if ok else 'FAIL'}: peak {s.peak_rss / MB:.0f} MB vs target "
            f"{limit / MB:.0f} MB (torch baseline {torch_base / MB:.0f} + half a checkpoint "
            f"{ckpt_bytes / 2 / MB:.0f})"
        )
    mk_ties = by_key.get("mk-ties")
    for op in ops:
        if op.tool != "saemerge" or not op.runs:
            continue
        s = summary["saemerge:" + op.name]
        other = by_key.get(op.pair) if op.pair else None
        if other is not None:
            o = summary["mergekit:" + other.name]
            verdicts.append(
                f"WALL {op.name:13s} {'PASS' if s.wall <= o.wall else 'FAIL'}: saemerge {s.wall:.2f} s "
                f"vs mergekit {o.wall:.2f} s (x{s.wall / o.wall:.2f}; cpu {s.cpu:.1f} vs {o.cpu:.1f} s); "
                f"RSS {s.peak_rss / MB:.0f} "
                f"vs {o.peak_rss / MB:.0f} MB"
            )
        elif mk_ties is not None and op.name in ("merge sae", "prune"):
            o = summary["mergekit:" + mk_ties.name]
            verdicts.append(
                f"INFO {op.name:13s} mergekit has no equivalent; beside mergekit ties: "
                f"{s.wall:.2f} s vs {o.wall:.2f} s (x{s.wall / o.wall:.2f})"
            )
    for v in verdicts:
        print(v)
    return {
        "summary": {k: vars(v) | {"tail": ""} for k, v in summary.items()},
        "verdicts": verdicts,
        "baselines": {k: vars(v) | {"tail": ""} for k, v in bases.items()},
        "rss_limit": limit,
    }


def agreement(ops: list[Op], paths: dict[str, Path], density: float) -> dict:
    """saemerge vs mergekit outputs for the merges both ran."""
    out = {}
    sm = {op.name: op for op in ops if op.tool == "saemerge" and op.runs and op.runs[-1].rc == 0}
    mk = {op.name: op for op in ops if op.tool == "mergekit" and op.runs and op.runs[-1].rc == 0}
    for name in sorted(set(sm) & set(mk)):
        extra = []
        if name == "merge ties":
            extra = [
                json.dumps(
                    {
                        "base": str(paths["base"]),
                        "density": density,
                        "experts": [str(paths["expert0"]), str(paths["expert1"])],
                    }
                )
            ]
        res = in_worker("compare", str(sm[name].out), str(mk[name].out), *extra)
        out[name] = res
        if "error" in res:
            print(f"AGREE {name}: {res['error']}")
            continue
        print(
            f"AGREE {name:13s} max |saemerge - mergekit| = {res['max_abs_diff']:.3g} "
            f"(worst: {res['worst_tensor'] or '-'}); {res['differing_entries']} of {res['entries']} entries differ"
            + (
                f" ({res['differing_at_trim_ties']} at a trim-threshold tie, {res['differing_at_zero_sum_election']}"
                f" at a zero-sum sign election, {res['differing_unexplained']} unexplained)"
                if res["differing_at_trim_ties"] is not None
                else ""
            )
            + "; "
            f"{res['bit_equal_tensors']}/{res['tensors']} tensors bit-identical; dtypes {','.join(res['dtypes'])}"
            + (f"; only in saemerge: {res['only_in_first'][:3]}" if res["only_in_first"] else "")
            + (f"; only in mergekit: {res['only_in_second'][:3]}" if res["only_in_second"] else "")
        )
    return out


def profile_ops(ops: list[Op], env: dict[str, str], logs: Path, top: int) -> None:
    """Each saemerge op once more under cProfile (not timed); the top functions by own time."""
    import pstats

    for op in ops:
        if op.tool != "saemerge":
            continue
        shutil.rmtree(op.out, ignore_errors=True)
        prof = logs / f"profile-{op.name.replace(' ', '-')}.prof"
        cmd = [sys.executable, "-m", "cProfile", "-o", str(prof)] + op.cmd[1:]
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        print(f"\n# cProfile of saemerge {op.name} ({prof}), top {top} by own time:")
        stats = pstats.Stats(str(prof))
        stats.sort_stats("tottime").print_stats(top)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--params", default="100M", help="approximate parameters per checkpoint (default 100M)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--workdir", type=Path, help="where checkpoints and outputs go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the workdir (checkpoints are reused next time)")
    p.add_argument("--skip-mergekit", action="store_true", help="measure saemerge only")
    p.add_argument(
        "--mergekit",
        type=Path,
        default=Path(os.environ.get("SAEMERGE_BENCH_MERGEKIT", DEFAULT_MERGEKIT_VENV)),
        help=f"mergekit venv (created if missing) or mergekit-yaml executable (default {DEFAULT_MERGEKIT_VENV})",
    )
    p.add_argument("--mergekit-spec", default=MERGEKIT_SPEC, help=f"what pip installs (default {MERGEKIT_SPEC})")
    p.add_argument("--repeat", type=int, default=1, help="runs per operation (default 1)")
    p.add_argument(
        "--stat",
        choices=("best", "median"),
        default="best",
        help="summary over repeats (default best: least disturbed by a shared CPU)",
    )
    p.add_argument("--threads", type=int, help="torch/OMP threads for every tool (default: torch's own)")
    p.add_argument("--sparsity", type=float, default=0.5, help="prune and SAE sparsity s_t (default 0.5)")
    p.add_argument("--density", type=float, default=0.2, help="TIES density (default 0.2)")
    p.add_argument("--shard-size", default="5GB", help="output shard size for both tools (default 5GB: one file)")
    p.add_argument(
        "--ops", nargs="+", default=["prune", "sae", "ties", "linear"], choices=("prune", "sae", "ties", "linear")
    )
    p.add_argument("--profile", action="store_true", help="also run each saemerge op under cProfile")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


def worker(argv: list[str]) -> int:
    """The torch-using steps, run in a child (see :func:`in_worker`); prints one JSON line."""
    if argv[0] == "build":
        paths = build_family(Path(argv[1]), json.loads(argv[2]), argv[3])
        print(json.dumps({k: str(v) for k, v in paths.items()}))
    elif argv[0] == "compare":
        ties = json.loads(argv[3]) if len(argv) > 3 else None
        print(json.dumps(compare_outputs(Path(argv[1]), Path(argv[2]), ties)))
    else:
        raise SystemExit(f"unknown worker step {argv[0]!r}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_worker"]:
        return worker(argv[1:])
    args = parse_args(argv)
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    shape = choose_shape(parse_count(args.params))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="saemerge-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    logs, outdir = workdir / "logs", workdir / "out"
    logs.mkdir(exist_ok=True)
    outdir.mkdir(exist_ok=True)
    env = child_env(args)
    try:
        exe, mk_version = None, None
        if not args.skip_mergekit:
            exe = find_mergekit(args.mergekit)
            if exe is None:
                try:
                    exe = install_mergekit(args.mergekit, args.mergekit_spec)
                except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
                    print(f"# mergekit could not be installed into {args.mergekit}: {exc}; measuring saemerge only")
            if exe is not None:
                mk_version = mergekit_version(exe)
        t0 = time.perf_counter()
        paths = {
            k: Path(v) for k, v in in_worker("build", str(workdir / "ckpt"), json.dumps(shape), args.dtype).items()
        }
        ckpt_bytes = weights_bytes(paths["expert0"])
        print(
            f"# checkpoints: LLaMA, {shape['params'] / 1e6:.1f}M params each (hidden {shape['hidden']}, "
            f"intermediate {shape['intermediate']}, {shape['layers']} layers, vocab {shape['vocab']}), "
            f"{args.dtype}, {ckpt_bytes / MB:.1f} MB of safetensors each; ready in "
            f"{time.perf_counter() - t0:.1f} s under {workdir / 'ckpt'}"
        )
        ti = torch_info()
        threads = args.threads or f"default ({ti['threads']})"
        print(
            f"# host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; torch "
            f"{ti['version']}, threads {threads}; "
            f"mergekit {mk_version or 'not run'}; {args.repeat} run(s) per op, {args.stat} reported; "
            f"MB = 10^6 bytes"
        )
        warm_cache(paths)
        own = _proc_rss(os.getpid())
        print(f"# this launcher's RSS {sum(own) / MB:.0f} MB (a floor under every child's ru_maxrss)")
        bases = {
            "saemerge: import torch, safetensors": baseline(
                [sys.executable, "-c", "import torch, safetensors"], env, logs, "torch", args.repeat
            ),
            "saemerge: CLI --help": baseline([sys.executable, "-m", "saemerge", "--help"], env, logs, "cli", 1),
        }
        ops = saemerge_ops(paths, outdir, args)
        if exe is not None:
            stack = "import torch, safetensors, transformers, mergekit.merge, mergekit.config, mergekit.options"
            bases["mergekit: import its stack"] = baseline(
                [str(exe.parent / "python"), "-c", stack], env, logs, "mergekit", args.repeat
            )
            ops += mergekit_ops(exe, paths, outdir, args)
        run_ops(ops, env, logs, args.repeat)
        figures = report(ops, bases, ckpt_bytes, args.stat)
        figures["agreement"] = agreement(ops, paths, args.density)
        figures.update(shape=shape, dtype=args.dtype, mergekit=mk_version, load_end=os.getloadavg()[0])
        print(f"# load average {os.getloadavg()[0]:.2f} at the end (the CPU is shared: compare cpu s too)")
        if args.profile:
            profile_ops(ops, env, logs, 25)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1, default=str))
        failed = [op for op in ops if any(r.rc != 0 for r in op.runs)]
        return 1 if failed else 0
    finally:
        if not args.keep:  # only what this script created; a --workdir given is left in place
            for sub in ("ckpt", "out", "logs"):
                shutil.rmtree(workdir / sub, ignore_errors=True)
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
