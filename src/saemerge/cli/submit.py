"""``saemerge submit``: compile the pipeline and run it on a Kubeflow Pipelines 2.x cluster.

    saemerge submit --host https://kubeflow.example.com/pipeline --namespace team-a \\
        --param run_uri=s3://saemerge/runs/r1 --param 'experts=["s3://m/math","s3://m/ml"]' \\
        --param base_uri=s3://m/base --param data_uri=s3://saemerge/data --wait

Authentication: a bearer token from --token or KFP_TOKEN (never printed); without one,
kfp.Client's own credentials (kube config context, or in-cluster service account).
Without --param run_uri, each run writes under RUN_ROOT/<KFP run id> (--run-root).
With --json, stdout holds one JSON object and nothing else; progress goes to stderr.
Exit codes: 0 submitted (with --wait: succeeded), 1 the run failed or was canceled,
2 bad input (nothing was sent), 3 --timeout passed while waiting, 4 the KFP API refused
or failed a call (HTTP error, unreachable, bad token), 5 the KFP backend is older than the
pipeline needs (2.14: saemerge.pipeline.backend; read from healthz, the images of its
ml-pipeline Deployment with a kube context, or --kfp-version). Errors are one line on stderr; with
--json, stdout then holds {"error": ..., "exit_code": ..., "http_status": ..., "submitted": ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from saemerge.cli.pipeline import add_compile_flags, compile_options
from saemerge.errors import SaeMergeError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "submit",
        help="compile the pipeline and run it on a Kubeflow Pipelines 2.x cluster (kfp.Client)",
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_cluster_flags(p, wait_help="follow the run until it ends; exit 1 unless it succeeded")
    p.add_argument("--experiment", default="saemerge", help="experiment name, created if missing (default saemerge)")
    p.add_argument("--run-name", help="run name (default sae-YYYYmmdd-HHMMSS)")
    p.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="pipeline parameter, repeatable; JSON values for numbers, lists, objects, booleans",
    )
    p.add_argument(
        "--schedule",
        metavar="CRON",
        help="create a recurring run instead (cron, 5 fields or 6 with seconds; e.g. '0 3 * * 1')",
    )
    p.add_argument(
        "--run-root",
        default=os.environ.get("SAEMERGE_RUN_ROOT", "s3://saemerge/runs"),
        metavar="URI",
        help="without --param run_uri, each run writes under URI/<KFP run id> (env SAEMERGE_RUN_ROOT; "
        "default s3://saemerge/runs)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="submit a failed or preempted run again onto its own run_uri (RUN: its s3:// URI, or its id "
        "under --run-root): search, steps and every parameter come from its run.json (S3 settings needed "
        "here); finished models, scores and generations are read back, not redone",
    )
    p.add_argument("--dry-run", action="store_true", help="compile and check the parameters; contact nothing")
    p.add_argument(
        "--json", action="store_true", help="print only a JSON summary (ids, state) on stdout; progress goes to stderr"
    )
    add_compile_flags(p)
    p.set_defaults(func=cmd_submit, search=None)  # unset: sae, or the record's with --resume


def add_cluster_flags(p: argparse.ArgumentParser, *, wait_help: str) -> None:
    """The flags of every verb that submits to a cluster (`saemerge submit`, `saemerge study
    submit`): where the KFP API is, who we are, and how to follow and run the runs. Read back
    by :func:`cluster_request`."""
    p.add_argument(
        "--host",
        default=os.environ.get("KF_PIPELINES_ENDPOINT"),
        help="KFP API URL, e.g. https://kubeflow.example.com/pipeline (env KF_PIPELINES_ENDPOINT); "
        "omitted: through the kube API server proxy of the current context",
    )
    p.add_argument("--token", help="bearer token (default env KFP_TOKEN); prefer the env: flags show in `ps`")
    p.add_argument("--kube-context", help="kube config context to use when no --host is given")
    p.add_argument(
        "--namespace",
        default=os.environ.get("KFP_NAMESPACE"),
        help="Kubeflow profile namespace of the experiment and runs (env KFP_NAMESPACE; "
        "required on multi-user clusters)",
    )
    p.add_argument(
        "--kfp-version",
        metavar="X.Y",
        help="the KFP backend's version, where neither healthz (releases before 2.16 say 'unknown') nor the "
        "ml-pipeline Deployment's image tags (read with a kube context) tell it",
    )
    p.add_argument(
        "--kfp-namespace",
        default="kubeflow",
        help="namespace KFP is installed in, read with a kube context (default kubeflow)",
    )
    p.add_argument("--wait", action="store_true", help=wait_help)
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="with --wait: give up on a run after this long")
    p.add_argument("--poll-interval", type=float, default=30.0, metavar="SECONDS", help="with --wait (default 30)")
    p.add_argument("--service-account", help="Kubernetes service account of the runs' pods (default: the server's)")
    p.add_argument("--pipeline-root", help="s3://... for KFP's own artifacts (default: kfp-launcher's)")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="KFP's step cache is off in every task by default (the run's own records make a re-run "
        "free); the flag is kept for scripts that give it",
    )


def cluster_request(args: argparse.Namespace, **fields):
    """A SubmitRequest with the cluster settings of the flags every submitting verb shares
    (`saemerge submit`, `saemerge study submit`); `fields` sets the rest."""
    from saemerge.pipeline.submit import SubmitRequest

    if args.timeout is not None and not args.wait:
        raise SaeMergeError("--timeout applies only with --wait")
    if args.poll_interval <= 0:
        raise SaeMergeError(f"--poll-interval {args.poll_interval:g}: must be positive")
    return SubmitRequest(
        host=args.host or None,
        token=args.token or os.environ.get("KFP_TOKEN") or None,
        kube_context=args.kube_context,
        namespace=args.namespace or None,
        timeout=args.timeout,
        poll_interval=args.poll_interval,
        service_account=args.service_account,
        pipeline_root=args.pipeline_root,
        enable_caching=False,  # always (see --no-cache); CompileOptions.caching documents why
        options=compile_options(args, notice=False),  # submit() warns once the parameters are checked
        dry_run=args.dry_run,
        kfp_version=args.kfp_version,
        kfp_namespace=args.kfp_namespace,
        **fields,
    )


def cmd_submit(args: argparse.Namespace) -> int:
    from saemerge.config import parse_param_args
    from saemerge.pipeline.submit import SUCCEEDED, WaitTimeout, resumed_request, submit

    try:
        params: dict = parse_param_args(args.param)
        if args.resume:
            if args.schedule:
                raise SaeMergeError("--resume submits one run again; it cannot be combined with --schedule")
            given = {f"--param {k}": v for k, v in params.items()}
            given.update({f: v for f, v in (("--search", args.search), ("--steps", args.steps)) if v is not None})
            config, params = resumed_request(args.resume, args.run_root, given)
            args.search, args.steps = config.search, config.steps
            args.run_name = args.run_name or f"resume-{config.run_uri.rsplit('/', 1)[-1]}"
        req = cluster_request(
            args,
            experiment=args.experiment,
            run_name=args.run_name,
            params=params,
            schedule=args.schedule,
            wait=args.wait,
            run_root=args.run_root,
        )
    except SaeMergeError as exc:
        return report_error(exc, args.json)
    # --json: stdout is the JSON alone. Progress, and whatever kfp.Client prints ("Experiment
    # details: ..."), goes to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    try:
        with quiet:
            result = submit(req, out=lambda line: print(line, flush=True))
    except SaeMergeError as exc:
        return report_error(exc, args.json)
    except WaitTimeout as exc:
        print(f"saemerge: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps(exc.result.to_dict(), indent=2, sort_keys=True))
        return 3
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    if result.state is not None and result.state != SUCCEEDED:
        return 1
    return 0


def report_error(exc: SaeMergeError, as_json: bool) -> int:
    """One line on stderr, with --json a JSON error object on stdout; the error's exit code
    (:class:`~saemerge.pipeline.submit.KfpApiError` 4, ``BackendTooOld`` 5, bad input 2)."""
    code = int(getattr(exc, "exit_code", 2))
    print(f"saemerge: error: {exc}", file=sys.stderr)
    if as_json:
        result = getattr(exc, "result", None)
        print(
            json.dumps(
                {
                    "error": str(exc),
                    "exit_code": code,
                    "http_status": getattr(exc, "status", None),
                    "submitted": result.to_dict() if result is not None else None,
                },
                indent=2,
                sort_keys=True,
            )
        )
    return code
