"""``saemerge study``: run a grid of runs (a preset or a YAML file), locally or on Kubeflow, and report on it.

    saemerge study run --local scoring          # the embedded default; resumable: run it again to go on
    saemerge study submit table1 --host URL     # one KFP run per grid entry, in the experiment study-<id>
    saemerge study report scoring               # studies/<id>/report/: Markdown, HTML, Parquet, PNG
    saemerge study status scoring

`study submit` exits as `saemerge submit` does: 0 submitted (with --wait: all succeeded),
2 bad input or a run that did not succeed, 3 --timeout passed while waiting, 4 the KFP API
refused or failed a call, 5 the KFP backend is older than the pipeline needs; an error is one
line on stderr, and with --json stdout holds {"error", "exit_code", "http_status", "submitted"}.
Runs submitted before an error stay recorded: submitting the study again goes on from there.

Presets: table1 (the paper's Table 1), scoring, archive, range, measure, schedule (Tables 2-6)
and optset (optimisation-set size). A study's record and report live under
s3://BUCKET/studies/<id>/; its runs under s3://BUCKET/runs/<id>-<arm>-b<bench seed>-r<run seed>.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from saemerge.cli.pipeline import add_compile_flags, local_store_if_needed
from saemerge.cli.submit import add_cluster_flags, cluster_request
from saemerge.errors import SaeMergeError


def cmd_run(args: argparse.Namespace) -> int:
    from saemerge.study.local import run_study_local
    from saemerge.study.spec import load_spec

    if not args.local:
        raise SaeMergeError("study run: only --local is available; on a cluster use `saemerge study submit`")
    if args.max_runs is not None and args.max_runs < 1:
        raise SaeMergeError(f"--max-runs {args.max_runs}: must be at least 1")
    spec = load_spec(args.study)  # a bad study file stops here, before the store starts
    run_study_local(
        spec,
        study_id=args.id,
        workdir=Path(args.workdir),
        bucket=args.bucket,
        parallel=args.parallel,
        max_runs=args.max_runs,
        reuse=not args.no_reuse,
    )
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Exit codes and errors as ``saemerge submit`` (:func:`saemerge.cli.submit.report_error`):
    4 for an API error, 5 for a backend below the floor, 3 for ``--timeout``, 2 for bad input
    or a run that did not succeed; one line on stderr, with --json a JSON error on stdout."""
    from saemerge.cli.submit import report_error
    from saemerge.study.runner import submit_study
    from saemerge.study.spec import load_spec

    try:
        spec = load_spec(args.study)
        template = cluster_request(args)
        # --json: stdout is the JSON alone; progress and what kfp.Client prints go to stderr
        quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
        with quiet, local_store_if_needed(f"s3://{args.bucket}/studies", Path(args.workdir) / "store"):
            record = submit_study(
                spec,
                template,
                study_id=args.id,
                bucket=args.bucket,
                wait=args.wait,
                reuse=not args.no_reuse,
                out=lambda line: print(line, flush=True),
            )
    except SaeMergeError as exc:
        return report_error(exc, args.json)
    if args.json:
        summary = {
            "study": record.layout.study_id,
            "dry_run": bool(args.dry_run),
            "entries": list(record.entries.values()),
        }
        summary.update({} if args.dry_run else {"record": record.layout.record, "counts": record.counts()})
        print(json.dumps(summary, indent=2, sort_keys=True))
    elif args.dry_run:
        print(f"study {record.layout.study_id}: {len(record.entries)} runs checked; nothing submitted or recorded")
    else:
        print(f"study {record.layout.study_id}: {record.counts()} ({record.layout.record})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from saemerge.study.collect import report_study

    with local_store_if_needed(f"s3://{args.bucket}/studies", Path(args.workdir) / "store"):
        where, summary = report_study(args.id, bucket=args.bucket, out_dir=Path(args.out) if args.out else None)
    print("test accuracy, macro average over tasks: mean [95 % CI] (n)")
    for row in summary:
        if row["task"] == "macro":
            print(f"  {row['method']:<24} {row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}] ({row['n']})")
    print(f"report: {where}/report.md")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from saemerge.study.collect import study_status

    with local_store_if_needed(f"s3://{args.bucket}/studies", Path(args.workdir) / "store"):
        status = study_status(args.id, bucket=args.bucket)
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    print(f"study {status['study']}: {status['counts']}")
    for e in status["entries"]:
        extra = f"  {e['seconds']:.0f} s" if e.get("seconds") else ""
        extra += f"  (reused: {e['reused_from']})" if e.get("reused_from") else ""
        print(f"  {e['id']:<32} {e['status']:<10} {e['run_uri']}{extra}", file=sys.stdout)
    return 0


def _reuse_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-reuse",
        action="store_true",
        help="run every entry, even one another study of the bucket already ran with the same "
        "configuration, seed and bench (by default that run's results are used)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket", default="saemerge", help="S3 bucket of the study and its runs (default saemerge)")
    p.add_argument(
        "--workdir",
        default=".saemerge",
        help="local state: the embedded store's data, the bench cache, run logs (default .saemerge)",
    )


def register(subparsers) -> None:
    study = subparsers.add_parser(
        "study",
        help="run a grid of runs (a paper table or ablation) and report it with confidence intervals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = study.add_subparsers(dest="study_verb", metavar="VERB", required=True)

    p = sub.add_parser("run", help="run every unfinished run of a study here (kfp.local, embedded S3); resumable")
    p.add_argument("study", metavar="PRESET|FILE", help="a preset (table1, scoring, ...) or a study YAML file")
    p.add_argument("--local", action="store_true", help="run here with kfp.local (the only mode of `study run`)")
    p.add_argument("--id", help="the study's id (default: its name); the same id continues the study")
    p.add_argument("--max-runs", type=int, metavar="N", help="stop after starting N runs (run again to go on)")
    p.add_argument(
        "--parallel", type=int, default=1, metavar="N", help="runs at once (default 1; 2 suits a 2-core machine)"
    )
    _reuse_flag(p)
    _common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("submit", help="submit every run of a study to Kubeflow (one experiment, one run per entry)")
    p.add_argument("study", metavar="PRESET|FILE", help="a preset (table1, scoring, ...) or a study YAML file")
    p.add_argument("--id", help="the study's id (default: its name)")
    add_cluster_flags(p, wait_help="follow every run until it ends; exit 2 unless all succeeded")
    p.add_argument(
        "--dry-run", action="store_true", help="compile and check every run; contact nothing, record nothing"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print only a JSON summary (the study's entries) on stdout, or a JSON error; progress goes to stderr",
    )
    add_compile_flags(p, search=False)
    _reuse_flag(p)
    _common(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("report", help="aggregate the finished runs into studies/<id>/report/")
    p.add_argument("id", metavar="ID", help="the study's id")
    p.add_argument("--out", help="also write the report into this local directory")
    _common(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("status", help="the study's runs and their state")
    p.add_argument("id", metavar="ID", help="the study's id")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    _common(p)
    p.set_defaults(func=cmd_status)
