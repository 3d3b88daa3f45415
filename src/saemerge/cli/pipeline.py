"""`saemerge compile | run | inspect`: the pipeline on the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

from saemerge.errors import SaeMergeError


def compile_options(args: argparse.Namespace, notice: bool = True):
    """CompileOptions from flags, then SAEMERGE_CPU_IMAGE / SAEMERGE_GPU_IMAGE, then defaults.

    Images named by neither get a warning on stderr (:func:`~saemerge.pipeline.common.default_images_notice`)
    when `notice`; `saemerge submit` gives it itself once the run's parameters are checked, so a
    bad parameter stays one line.
    """
    from saemerge.pipeline.common import CompileOptions, default_images_notice

    defaults = CompileOptions()
    selector = []
    for item in args.gpu_node_selector or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SaeMergeError(f"--gpu-node-selector {item!r}: expected LABEL=VALUE")
        selector.append((key, value))
    from saemerge.pipeline.resources import parse_override

    try:
        options = CompileOptions(
            search=args.search or "sae",
            steps=args.steps,
            cpu_image=args.cpu_image or os.environ.get("SAEMERGE_CPU_IMAGE") or defaults.cpu_image,
            gpu_image=args.gpu_image or os.environ.get("SAEMERGE_GPU_IMAGE") or defaults.gpu_image,
            gpu_resource=args.gpu_resource or defaults.gpu_resource,
            s3_secret=args.s3_secret or defaults.s3_secret,
            merge_parallelism=args.merge_parallelism or defaults.merge_parallelism,
            gpu_tolerations=tuple(args.gpu_toleration) if args.gpu_toleration is not None else defaults.gpu_tolerations,
            gpu_node_selector=tuple(selector),
            model_size=args.model_size or defaults.model_size,
            resources=tuple(parse_override(item) for item in args.resource or []),
            cache_volume=args.cache_volume or defaults.cache_volume,
            gpu_merges=bool(args.gpu_merges),
        )
    except ValueError as exc:  # a bad size, quantity, volume or image: one line naming the flag
        raise SaeMergeError(str(exc)) from None
    if notice and (text := default_images_notice(options)):
        print(f"saemerge: {text}", file=sys.stderr)
    return options


def _add_search_flags(p: argparse.ArgumentParser) -> None:
    from saemerge.pipeline.searches import SEARCHES

    p.add_argument(
        "--search",
        default="sae",
        metavar="NAME",
        help=f"the search: {', '.join(SEARCHES)} (default sae; unknown names get suggestions)",
    )
    p.add_argument(
        "--steps",
        type=int,
        help="generations (PSO: update steps), unrolled at compile time (default: the search's, 12; PSO 5)",
    )


def add_compile_flags(p: argparse.ArgumentParser, search: bool = True) -> None:
    """Compile options (shared with `saemerge submit`; a study's arms set search and steps themselves)."""
    if search:
        _add_search_flags(p)
    else:
        p.set_defaults(search="sae", steps=None)
    p.add_argument("--cpu-image", help="image of the CPU steps (env SAEMERGE_CPU_IMAGE)")
    p.add_argument("--gpu-image", help="image of the evaluate steps (env SAEMERGE_GPU_IMAGE)")
    p.add_argument("--gpu-resource", help="accelerator resource of evaluate (default nvidia.com/gpu)")
    p.add_argument("--s3-secret", help="Kubernetes secret with the AWS_* keys (default saemerge-s3)")
    p.add_argument("--merge-parallelism", type=int, help="merges running at once per generation (default 4)")
    p.add_argument(
        "--gpu-toleration",
        action="append",
        metavar="TAINT_KEY",
        help="taint key GPU pods tolerate (NoSchedule), repeatable (default nvidia.com/gpu)",
    )
    p.add_argument(
        "--gpu-node-selector",
        action="append",
        metavar="LABEL=VALUE",
        help="node label GPU pods must run on, repeatable",
    )
    p.add_argument(
        "--model-size",
        metavar="SIZE",
        help="size of the checkpoints, for the pods' default CPU, memory and cache requests: tiny, 3b, 7b, "
        "1.5b, 500m or a parameter count (default 7b; rule in saemerge.pipeline.resources)",
    )
    p.add_argument(
        "--resource",
        action="append",
        metavar="KIND.NAME=VALUE",
        help="override one figure, repeatable: KIND small|merge|evaluate, NAME cpu|cpu_limit|memory|"
        "memory_limit|storage (the cache volume), VALUE a Kubernetes quantity or none; "
        "e.g. evaluate.memory=48Gi",
    )
    p.add_argument(
        "--cache-volume",
        metavar="SPEC",
        help="the download cache's volume: emptydir (default; sizeLimit = storage), pvc:NAME (an existing "
        "shared claim, writable by uid 1000 or gid 0) or none; ephemeral is refused (KFP sets no fsGroup)",
    )
    p.add_argument(
        "--gpu-merges",
        action="store_true",
        help="run prune/merge steps on the GPU image with one GPU each (needed for merge_device=cuda, "
        "which is refused otherwise)",
    )


def cmd_compile(args: argparse.Namespace) -> int:
    from saemerge.pipeline.compile import compile_pipeline

    opts = compile_options(args)
    stats = compile_pipeline(Path(args.out), opts, workflow_size=not args.no_workflow_size)
    text = stats.pop("workflow_text", None)
    print(json.dumps({"out": args.out, **stats}, indent=2))
    if text:
        print(text, file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from saemerge.config import param_value, parse_param_args
    from saemerge.pipeline.local import LocalRun, run_local

    if not args.local:
        raise SaeMergeError("run: only --local is available here; on a cluster use `saemerge submit --host URL`")
    params = {key: param_value(text) for key, text in parse_param_args(args.param).items()}
    # Flags given beside --resume are checked against the run's record (run.json), which
    # gives everything else; without --resume the unset ones take their defaults.
    flags = {"--search": args.search, "--steps": args.steps, "--seed": args.seed}
    flags.update({"--bench-size": args.bench_size, "--bench-seed": args.bench_seed})
    given = {flag: value for flag, value in flags.items() if value is not None}
    if args.resume:
        if args.run_id and args.run_id != args.resume:
            raise SaeMergeError(f"--run-id {args.run_id}: --resume {args.resume} names the run; give one of them")
        given.update({f"--param {key}": value for key, value in params.items()})
        run = LocalRun(
            run_id=args.resume,
            workdir=Path(args.workdir),
            resume=True,
            bucket=args.bucket,
            runner=args.runner,
            given=given,
        )
    else:
        search = args.search or "sae"
        run = LocalRun(
            run_id=args.run_id or time.strftime(f"{search}-%Y%m%d-%H%M%S"),
            workdir=Path(args.workdir),
            bench_size=args.bench_size or "tiny",
            seed=0 if args.seed is None else args.seed,
            bench_seed=args.bench_seed,
            search=search,
            steps=args.steps,
            params=params,
            bucket=args.bucket,
            runner=args.runner,
        )
    run_local(run)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from saemerge.progress import progress_line
    from saemerge.runlog import describe_run

    with local_store_if_needed(args.run, Path(args.workdir) / "store"):
        table = describe_run(args.run)  # refuses a URI that holds no run first
        print(progress_line(args.run))  # from the run's own records, however far KFP's task list got
        print(table)
    return 0


@contextlib.contextmanager
def local_store_if_needed(uri: str, root: Path):
    """For an s3:// URI with no S3 settings in the environment, use the embedded store of a
    local run (`saemerge run --local` keeps its data under .saemerge/store): attach to it if it
    runs, else start it for the duration of the command."""
    from saemerge.storage import parse_uri

    configured = (
        os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_PROFILE") or os.environ.get("AWS_ACCESS_KEY_ID")
    )
    if not parse_uri(uri).is_s3 or configured or not (root / "credentials.json").exists():
        yield
        return
    from saemerge.objectstore import Store

    saved = dict(os.environ)
    with Store.attach_or_start(root, detach=False) as store:
        os.environ.update(store.env())
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def register(sub) -> None:
    p = sub.add_parser("compile", help="compile the kfp pipeline to YAML (upload it in the Kubeflow UI)")
    add_compile_flags(p)
    p.add_argument("--out", default="sae_pipeline.yaml", help="output file (default sae_pipeline.yaml)")
    p.add_argument(
        "--no-workflow-size",
        action="store_true",
        help="skip the estimate of the Argo Workflow the KFP backend makes of it (a few seconds)",
    )
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", help="run the pipeline: --local runs it under kfp.local on the embedded S3 store")
    p.add_argument("--local", action="store_true", help="run here with kfp.local (the only mode of `run`)")
    p.add_argument("--run-id", help="name of the run (default sae-YYYYmmdd-HHMMSS)")
    p.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue this run with the settings its run.json records (search, steps, bench, every "
        "parameter); a flag given beside it must agree with them",
    )
    _add_search_flags(p)
    p.set_defaults(search=None)  # unset: sae for a new run, the record's on --resume
    p.add_argument("--bench-size", help="micro, tiny or small (default tiny)")
    p.add_argument("--seed", type=int, help="the run's seed (sampling, pairing, DARE); default 0")
    p.add_argument("--bench-seed", type=int, help="seed of the bench built and used (default: --seed)")
    p.add_argument("--workdir", default=".saemerge", help="local state: store data, bench cache, run logs")
    p.add_argument("--bucket", default="saemerge", help="S3 bucket of the run and the bench (default saemerge)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="pipeline parameter (JSON value), repeatable")
    p.add_argument(
        "--runner",
        default="warm",
        help="how kfp.local runs each step (saemerge.pipeline.local_child.RUNNERS; default warm: each step "
        "forked from a process that imported the steps' code once; subprocess: a fresh process per step; "
        "docker: each step in its image, as on a cluster)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("inspect", help="summarise a run: one row per generation and the best model's lineage")
    p.add_argument("run", metavar="RUN_URI", help="s3://bucket/prefix/RUN_ID or a local run directory")
    p.add_argument(
        "--workdir",
        default=".saemerge",
        help="without S3 settings in the environment, read s3:// from the embedded store of this workdir",
    )
    p.set_defaults(func=cmd_inspect)
