"""The download cache: local copies of remote directories, keyed by their content.

An entry is ``<cache>/objects/<key>/`` holding the directory's files and its ``manifest.json``:
the key of a published directory is its files hash, that of a plain one (a user's checkpoint
without a manifest, :mod:`saemerge.storage.plain`) its listing hash. An entry is verified
when stored, read-only by convention, and shared by every read of the same content (whatever
its URI). In-flight downloads and uploads live in private directories under ``<cache>/tmp/``,
on the same filesystem, so an entry appears by one rename. The cache is ``$SAEMERGE_CACHE``
or ``~/.cache/saemerge`` (:mod:`saemerge.cache.paths`); :mod:`saemerge.cache.evict` sizes it and
evicts entries, and :mod:`saemerge.cache.budget` keeps it within ``$SAEMERGE_CACHE_MAX_SIZE`` as entries are added.

This module does not know where the files come from: :func:`fetch` is given a function that
downloads a manifest's files into a directory (the S3 backend of :mod:`saemerge.storage`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from saemerge.cache import budget
from saemerge.cache.paths import cache_root, entry_path, private_root, scratch_dir
from saemerge.errors import SaeMergeError
from saemerge.util import manifest as mf
from saemerge.util.manifest import MANIFEST_NAME

__all__ = ["adopt", "cache_root", "entry_dir", "fetch", "fetch_keyed", "private_root", "scratch_dir"]

log = logging.getLogger(__name__)


def entry_dir(manifest: dict) -> Path:
    """Where the entry for ``manifest``'s content lives (whether or not it is there)."""
    return entry_path(manifest["files_hash"])


def _lookup(key: str, source: str, manifest: dict | None) -> Path | None:
    """The entry ``key``, marked used; None when absent or damaged (then removed).

    Checked against ``manifest`` when given, else against the manifest stored in the entry.
    """
    dest = entry_path(key)
    if not dest.is_dir():
        return None
    try:  # entries are verified when stored; re-check presence and sizes only
        if manifest is None:
            manifest = mf.loads((dest / MANIFEST_NAME).read_bytes(), str(dest / MANIFEST_NAME))
        mf.verify_dir(dest, manifest, str(dest), check_hashes=False)
    except (SaeMergeError, OSError) as exc:
        log.warning("cache entry is damaged (%s); downloading again", exc)
        shutil.rmtree(dest, ignore_errors=True)
        return None
    log.info("using cached copy of %s at %s", source, dest)
    with suppress(OSError):  # last use, for `saemerge cache prune` (LRU)
        os.utime(dest)
    return dest


def _install(tmp: Path, dest: Path) -> None:
    private_root()
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, dest)
    except OSError:
        if not dest.is_dir():  # not a concurrent writer of the same content
            raise


def fetch(manifest: dict, source: str, download: Callable[[Path], None]) -> Path:
    """The cache entry for ``manifest``'s content, downloaded first when the cache lacks it.

    Args:
        source: the directory's URI, for messages.
        download: fills a given empty directory with the manifest's files (checking their
            hashes when the caller wants them checked); presence and sizes are checked here.

    Returns:
        the entry's directory; treat it as read-only.
    """

    def fill(tmp: Path) -> dict:
        download(tmp)
        return manifest

    return fetch_keyed(manifest["files_hash"], source, fill, manifest, size=manifest["total_size"])


def fetch_keyed(
    key: str, source: str, download: Callable[[Path], dict], manifest: dict | None = None, size: int = 0
) -> Path:
    """The cache entry ``key``, made by ``download`` when the cache lacks it.

    For directories whose manifest is known only after the download (plain directories,
    keyed by their listing: :mod:`saemerge.storage.plain`).

    Args:
        download: fills a given empty directory, verifies it, and returns its manifest.
        manifest: the expected manifest when known beforehand (checked on lookup).
        size: bytes the entry will take (room is made for them: :mod:`saemerge.cache.budget`).
    """
    cached = _lookup(key, source, manifest)
    if cached is not None:
        return cached
    dest = entry_path(key)
    budget.make_room(key, size)
    tmp = scratch_dir("in-")
    try:
        made = download(tmp)
        mf.verify_dir(tmp, made, source, check_hashes=False)
        (tmp / MANIFEST_NAME).write_bytes(mf.dumps(made))
        _install(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def adopt(tmp: Path, manifest: dict) -> None:
    """Keep a just-uploaded directory (a :func:`scratch_dir`) as the entry for its content.

    A later read of what was uploaded then needs no download. ``tmp`` moves into the cache,
    unless an entry for the same content is already there.
    """
    (tmp / MANIFEST_NAME).write_bytes(mf.dumps(manifest))
    dest = entry_dir(manifest)
    if not dest.exists():
        budget.make_room(dest.name, manifest["total_size"])
        _install(tmp, dest)
