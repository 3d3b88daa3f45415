"""``saemerge cache info|prune``: the local download cache (``$SAEMERGE_CACHE`` or ``~/.cache/saemerge``).

saemerge cache info                    # entries, sizes, stale temp directories
saemerge cache prune --max-size 20G    # sweep dead temp dirs, then least recently used entries
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _add_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir", type=Path, default=None, help="the cache directory (default $SAEMERGE_CACHE or ~/.cache/saemerge)"
    )


def register(subparsers) -> None:
    cache = subparsers.add_parser("cache", help="inspect or prune the local download cache")
    verbs = cache.add_subparsers(dest="cache_verb", metavar="ACTION", required=True)

    p = verbs.add_parser("info", help="print the cache's entries and temp directories with sizes")
    _add_dir(p)
    p.add_argument(
        "--limit",
        type=int,
        default=20,
        metavar="N",
        help="list the N most recently used entries (default 20; 0 lists all)",
    )
    p.set_defaults(func=_info)

    p = verbs.add_parser("prune", help="remove dead temp directories, then least recently used entries")
    _add_dir(p)
    p.add_argument(
        "--max-size",
        default=None,
        metavar="SIZE",
        help="keep the entries at or below this (e.g. 20G, 500M, 0); default: keep every entry",
    )
    p.add_argument(
        "--min-idle",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="never remove an entry used within this many seconds (default 600)",
    )
    p.add_argument(
        "--temp-idle",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="a temp directory untouched this long belongs to a dead process (default 3600)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    p.set_defaults(func=_prune)


def _info(args: argparse.Namespace) -> int:
    from saemerge.cache import usage
    from saemerge.util.units import human

    u = usage(args.dir)
    now = time.time()
    print(f"cache: {u.root}")
    print(f"entries: {len(u.entries)}, {human(u.entry_bytes)}")
    recent = list(reversed(u.entries))  # most recently used first
    for e in recent[: args.limit] if args.limit > 0 else recent:
        print(f"  {e.path.name[:16]}  {human(e.bytes):>10}  used {_ago(now - e.last_used)} ago")
    if 0 < args.limit < len(recent):
        print(f"  ... {len(recent) - args.limit} older entries (--limit 0 lists all)")
    print(f"temp directories: {len(u.temp)}, {human(u.temp_bytes)}")
    for t in u.temp:
        print(f"  {t.path.name}  {human(t.bytes):>10}  touched {_ago(now - t.last_used)} ago")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from saemerge.cache import cache_root, evict
    from saemerge.errors import SaeMergeError
    from saemerge.util.units import human, parse_size

    max_bytes = parse_size(args.max_size, what="--max-size") if args.max_size is not None else None
    for flag, value in (("--min-idle", args.min_idle), ("--temp-idle", args.temp_idle)):
        if value < 0:
            raise SaeMergeError(f"{flag} {value:g}: must be >= 0")
    root = args.dir if args.dir is not None else cache_root()
    r = evict(max_bytes, min_idle_s=args.min_idle, temp_idle_s=args.temp_idle, root=root, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{root}: {verb} {r.removed_entries} entries and {r.removed_temp} temp directories "
        f"({human(r.freed_bytes)}); entries now {human(r.kept_bytes)}"
    )
    if max_bytes is not None and r.kept_bytes > max_bytes:
        print(f"still above --max-size {args.max_size}: the rest was used within {args.min_idle:g} s")
    return 0


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
