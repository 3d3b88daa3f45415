"""``saemerge upload SRC DEST``: publish a copy of a local HF checkpoint directory.

    saemerge upload ./Qwen2.5-7B-Instruct s3://models/qwen2.5-7b-instruct

A run reads a plain checkpoint in S3 too (identified by its listing, verified on first read:
:mod:`saemerge.storage.plain`); a published copy carries ``manifest.json`` (every file's size
and sha256, written last), so its identity is its content, every read is checked file by
file, and a half-finished upload is never mistaken for a checkpoint.

A data directory (``data_uri``: task splits as JSONL) must be published to be read from S3:
``saemerge upload --data SRC DEST``. So must a task directory (``tasks_uri``: lm-eval task YAMLs
and a ``<task>.saemerge.yaml`` sidecar each, docs/own-tasks.md): ``saemerge upload --tasks SRC
DEST`` checks every sidecar and YAML first (names, keys, clashes; no template is rendered and
no code runs here).

Checked first (checkpoints), reading headers only: ``config.json`` is there, nothing carries code (``*.py``,
``auto_map``), the weights are safetensors with readable headers (pickle-only checkpoints are
refused). Hidden files and directories (``.git``, ``.cache/huggingface`` of
``huggingface-cli download --local-dir``) are left out. S3 settings come from the usual AWS_*
environment.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path, PurePosixPath

from saemerge.errors import SaeMergeError


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in PurePosixPath(rel).parts)


def cmd_upload(args: argparse.Namespace) -> int:
    from saemerge import preflight, storage

    src = os.path.abspath(args.src)
    if not os.path.isdir(src):
        raise SaeMergeError(f"{args.src}: no such directory")
    if not storage.is_s3(args.dest) and os.path.abspath(args.dest) == src:
        raise SaeMergeError(f"{args.dest}: the destination is the source")
    if args.create_bucket:
        storage.ensure_bucket(args.dest, create=True)
    if args.data and args.tasks:
        raise SaeMergeError("--data and --tasks: a directory is one or the other")
    if args.tasks:
        from saemerge.evaluate.taskset import scan_dir, shipped_tasks

        found = scan_dir(Path(src), "user", reserved=shipped_tasks())
        if not found:
            raise SaeMergeError(f"{args.src}: no task sidecars (<task>.saemerge.yaml) in this directory")
    elif not args.data:
        preflight.check_model(src, "checkpoint")
    manifest, written = storage.publish_dir(src, args.dest, replace=args.replace, exclude=_hidden)
    dest = storage.parse_uri(args.dest).uri
    summary = {
        "uri": dest,
        "content_hash": manifest["content_hash"],
        "files": len(manifest["files"]),
        "total_size": manifest["total_size"],
        "uploaded": written,
    }
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        what = "published" if written else "already published (same content), nothing uploaded"
        print(
            f"{dest}: {what}; {summary['files']} files, {summary['total_size'] / 1e9:.2f} GB, "
            f"content {summary['content_hash'][:16]}"
        )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "upload",
        help="publish a local HF checkpoint directory (with a manifest) to s3:// or a local path",
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", metavar="SRC", help="a local HF checkpoint directory (config.json, *.safetensors, tokenizer)")
    p.add_argument("dest", metavar="DEST", help="where to publish it: s3://BUCKET/PREFIX (or a local directory)")
    p.add_argument("--replace", action="store_true", help="replace a published checkpoint with other content at DEST")
    p.add_argument("--create-bucket", action="store_true", help="create DEST's bucket if it does not exist")
    p.add_argument(
        "--data",
        action="store_true",
        help="SRC is a data directory (task splits as JSONL), not a checkpoint: skip the checkpoint checks",
    )
    p.add_argument(
        "--tasks",
        action="store_true",
        help="SRC is a task directory (lm-eval YAMLs + <task>.saemerge.yaml sidecars): check its sidecars, not a checkpoint",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary (uri, content_hash, files, size)")
    p.set_defaults(func=cmd_upload)
