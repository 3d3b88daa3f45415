"""``saemerge store start|stop|status|env``: the embedded S3 server for local runs.

saemerge store start --bucket saemerge     # detached; state under .saemerge/store
eval "$(saemerge store env)"               # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...
saemerge store stop
"""

from __future__ import annotations

import argparse
import shlex

DEFAULT_DIR = ".saemerge/store"


def _add_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        help=f"directory for the store's data, credentials and state (default {DEFAULT_DIR})",
    )


def register(subparsers) -> None:
    store = subparsers.add_parser("store", help="run the embedded S3 server (SeaweedFS) on 127.0.0.1")
    verbs = store.add_subparsers(dest="store_verb", metavar="ACTION", required=True)

    p = verbs.add_parser("start", help="start the server in the background")
    _add_dir(p)
    p.add_argument("--bucket", action="append", default=[], metavar="NAME", help="create this bucket (repeatable)")
    p.set_defaults(func=_start)

    p = verbs.add_parser("stop", help="stop the server started with `store start`")
    _add_dir(p)
    p.set_defaults(func=_stop)

    p = verbs.add_parser("status", help="say whether the server runs, and where (exit 1 if not)")
    _add_dir(p)
    p.set_defaults(func=_status)

    p = verbs.add_parser("env", help="print `export AWS_...` lines for the running server")
    _add_dir(p)
    p.add_argument("--readonly", action="store_true", help="the read-only identity's credentials")
    p.set_defaults(func=_env)


def _attached(directory: str):
    from saemerge.s3server.server import Store

    try:
        return Store.attach(directory)
    except Exception:  # no state: not started here
        return None


def _start(args: argparse.Namespace) -> int:
    from saemerge.s3server.server import Store

    running = _attached(args.dir)
    if running is not None and running.running():
        print(f"object store already running at {running.endpoint} (pid {running.pid})")
        return 0
    store = Store(args.dir, buckets=args.bucket).start(detach=True)
    print(f"object store running at {store.endpoint} (pid {store.pid}, data under {store.root / 'data'})")
    print(f'use it with: eval "$(saemerge store env --dir {shlex.quote(args.dir)})"')
    return 0


def _stop(args: argparse.Namespace) -> int:
    store = _attached(args.dir)
    if store is None:
        print(f"no object store state under {args.dir}")
        return 0
    was_running = store.running()
    store.stop()
    print("object store stopped" if was_running else "object store was not running (stale state removed)")
    return 0


def _status(args: argparse.Namespace) -> int:
    store = _attached(args.dir)
    if store is None or not store.running():
        print(f"object store under {args.dir}: not running")
        return 1
    print(f"object store under {store.root}: running, pid {store.pid}")
    print(f"  endpoint  {store.endpoint}")
    print(f"  buckets   {', '.join(store.bucket_names()) or '(none)'}")
    print(f"  log       {store.root / 'weed.log'}")
    return 0


def _env(args: argparse.Namespace) -> int:
    from saemerge.s3server.server import store_env

    for key, value in store_env(args.dir, readonly=args.readonly).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0
