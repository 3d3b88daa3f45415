"""The local download cache: how big it is, and evicting entries from it (``saemerge cache prune``).

:mod:`saemerge.cache.downloads` keeps every published directory that
:mod:`saemerge.storage` downloads under ``<cache>/objects/<files hash>/`` (verified,
read-only by convention) and in-flight downloads and uploads under ``<cache>/tmp/``.
Nothing removes either on its own: an entry is reused by every later read of the same
content, and a temp directory outlives a process that was killed mid-write. A tiny demo run adds about a hundred 4 MiB entries; a
run over 3B-parameter checkpoints adds gigabytes per generation.

(Evicting, not "pruning": pruning is what SAE does to weights, SAE-SPEC §1.)

:func:`evict` removes temp directories that nobody has touched for a while, then the
least recently used entries until the cache fits a size limit. Each read of an entry
sets its directory's mtime (its last use), and entries used in the last ``min_idle_s``
seconds are never removed, so pruning beside a running job does not pull a checkpoint
from under it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from saemerge.cache.paths import cache_root, objects_dir, temp_dir
from saemerge.errors import SaeMergeError


@dataclass
class Entry:
    path: Path
    bytes: int
    last_used: float  # the directory's mtime, seconds since the epoch


@dataclass
class Usage:
    root: Path
    entries: list[Entry] = field(default_factory=list)  # objects/, least recently used first
    temp: list[Entry] = field(default_factory=list)  # tmp/

    @property
    def entry_bytes(self) -> int:
        return sum(e.bytes for e in self.entries)

    @property
    def temp_bytes(self) -> int:
        return sum(e.bytes for e in self.temp)


@dataclass
class Pruned:
    removed_entries: int = 0
    removed_temp: int = 0
    freed_bytes: int = 0
    kept_bytes: int = 0


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:  # removed while we walked
                pass
    return total


def _entries(directory: Path) -> list[Entry]:
    out: list[Entry] = []
    if not directory.is_dir():
        return out
    for child in directory.iterdir():
        try:
            mtime = child.stat().st_mtime
        except FileNotFoundError:
            continue
        size = _dir_bytes(child) if child.is_dir() else child.stat().st_size
        out.append(Entry(child, size, mtime))
    return sorted(out, key=lambda e: (e.last_used, e.path.name))


def usage(root: Path | None = None) -> Usage:
    """What the cache at ``root`` (default :func:`~saemerge.cache.paths.cache_root`) holds."""
    root = Path(root) if root is not None else cache_root()
    return Usage(root, _entries(objects_dir(root)), _entries(temp_dir(root)))


def _remove(path: Path) -> None:
    """Rename out of the way first (atomic), so a reader never sees a half-deleted entry."""
    doomed = path.with_name(f".{path.name}.del-{secrets.token_hex(4)}")
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return
    if doomed.is_dir():
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        doomed.unlink(missing_ok=True)


def evict(
    max_bytes: int | None = None,
    *,
    min_idle_s: float = 600.0,
    temp_idle_s: float = 3600.0,
    root: Path | None = None,
    dry_run: bool = False,
    now: float | None = None,
    keep: Collection[str] = (),
) -> Pruned:
    """Remove stale temp directories, then least recently used entries above ``max_bytes``.

    Args:
        max_bytes: keep the entries' total at or below this; None keeps every entry
            (only temp directories are swept).
        min_idle_s: entries used more recently than this are never removed, even when
            the cache stays above ``max_bytes``.
        temp_idle_s: temp directories untouched for this long belong to dead processes
            (a live download or upload keeps writing into its directory).
        dry_run: report what would go, remove nothing.
        keep: names of entries never to remove (the ones this process is reading).
    """
    if max_bytes is not None and max_bytes < 0:
        raise SaeMergeError(f"--max-size {max_bytes}: must be >= 0")
    now = time.time() if now is None else now
    u = usage(root)
    result = Pruned()
    for t in u.temp:
        if now - _newest_mtime(t.path) < temp_idle_s:
            continue  # a live download or upload keeps writing here
        result.removed_temp += 1
        result.freed_bytes += t.bytes
        if not dry_run:
            _remove(t.path)
    total = u.entry_bytes
    for e in u.entries:  # least recently used first
        if max_bytes is None or total <= max_bytes:
            break
        if now - e.last_used < min_idle_s:
            break  # every later entry is more recent still
        if e.path.name in keep:
            continue
        total -= e.bytes
        result.removed_entries += 1
        result.freed_bytes += e.bytes
        if not dry_run:
            _remove(e.path)
    result.kept_bytes = total
    return result


def _newest_mtime(path: Path) -> float:
    """The latest mtime of ``path`` and anything under it (a download in progress is recent)."""
    newest = 0.0
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                pass
    try:
        newest = max(newest, path.stat().st_mtime)
    except FileNotFoundError:
        pass
    return newest
