"""The download cache: local copies of published remote directories, keyed by their files hash.

An entry is ``<cache>/objects/<files hash>/`` holding the directory's files and its
``manifest.json``; it is verified when stored, read-only by convention, and shared by every
read of the same content (whatever its URI). In-flight downloads and uploads live in private
directories under ``<cache>/tmp/``, on the same filesystem, so an entry appears by one
rename. The cache is ``$SAEMERGE_CACHE`` or ``~/.cache/saemerge``; :mod:`saemerge.cache.prune`
sizes and prunes it.

This module does not know where the files come from: :func:`fetch` is given a function that
downloads a manifest's files into a directory (the S3 backend of :mod:`saemerge.storage`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from saemerge import manifest as mf
from saemerge.errors import SaeMergeError
from saemerge.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """``$SAEMERGE_CACHE``, or ``~/.cache/saemerge``."""
    return Path(os.environ.get("SAEMERGE_CACHE") or "~/.cache/saemerge").expanduser()


def private_root() -> Path:
    """The cache root, created readable by its owner only (it holds copies of private models)."""
    root = cache_root()
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)  # mkdir's mode does not reach parents created on the way, and umask applies
    return root


def scratch_dir(prefix: str) -> Path:
    """A new private directory under the cache (same filesystem as cached downloads)."""
    root = private_root() / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def entry_dir(manifest: dict) -> Path:
    """Where the entry for ``manifest``'s content lives (whether or not it is there)."""
    return cache_root() / "objects" / manifest["files_hash"]


def _lookup(manifest: dict, source: str) -> Path | None:
    """The entry for ``manifest``, marked used; None when absent or damaged (then removed)."""
    dest = entry_dir(manifest)
    if not dest.is_dir():
        return None
    try:  # entries are verified when stored; re-check presence and sizes only
        mf.verify_dir(dest, manifest, str(dest), check_hashes=False)
    except SaeMergeError as exc:
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
    cached = _lookup(manifest, source)
    if cached is not None:
        return cached
    dest = entry_dir(manifest)
    tmp = scratch_dir("in-")
    try:
        download(tmp)
        mf.verify_dir(tmp, manifest, source, check_hashes=False)
        (tmp / MANIFEST_NAME).write_bytes(mf.dumps(manifest))
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
        _install(tmp, dest)
