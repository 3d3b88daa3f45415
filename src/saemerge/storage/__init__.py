"""One interface over local paths and ``s3://bucket/prefix`` URIs, with atomic publish.

Each function parses its URI once and hands the parsed
:class:`~saemerge.storage.uri.Location` to the backend for it (:func:`backend_for`):
:class:`~saemerge.storage.local.LocalBackend` or :class:`~saemerge.storage.s3.S3Backend`, both
implementing :class:`~saemerge.storage.base.Backend`. S3 endpoint, credentials and transfer
settings come from the environment (see :mod:`saemerge.storage.s3_conn`); S3 failures surface
as a one-line :class:`SaeMergeError` naming the endpoint and the access key id (never the
secret).

A directory is published with :func:`local_output` (written into a temp dir, then files, then
``manifest.json`` last) and read with :func:`local_input` (manifest verified; S3 directories
are downloaded once into a cache keyed by their files hash, ``$SAEMERGE_CACHE`` or
``~/.cache/saemerge``: :mod:`saemerge.cache.downloads`). See :mod:`saemerge.util.manifest` for the
manifest format. A *plain* directory (a user's HF checkpoint without a manifest) is read as
well, and :func:`identify` names what identifies any directory: see
:mod:`saemerge.storage.plain`. :func:`publish_dir` publishes a copy of a local directory
(``saemerge upload``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from saemerge.cache import budget
from saemerge.cache.downloads import cache_root, scratch_dir
from saemerge.errors import SaeMergeError
from saemerge.storage.base import Backend
from saemerge.storage.local import LocalBackend
from saemerge.storage.s3 import S3Backend
from saemerge.storage.s3_conn import s3_client, transfer_config
from saemerge.storage.uri import Location, join, parse_uri
from saemerge.util import manifest as mf
from saemerge.util.manifest import MANIFEST_NAME

__all__ = [
    "Backend",
    "Location",
    "backend_for",
    "cache_root",
    "exists",
    "ensure_bucket",
    "get_file",
    "identify",
    "is_s3",
    "join",
    "list_uris",
    "local_input",
    "local_output",
    "parse_uri",
    "publish_dir",
    "put_file",
    "read_bytes",
    "read_manifest",
    "s3_client",
    "scratch_dir",
    "transfer_config",
    "write_bytes",
]

_LOCAL = LocalBackend()
_S3 = S3Backend()


def backend_for(uri: str | os.PathLike | Location) -> tuple[Backend, Location]:
    """The backend for ``uri`` and the parsed location (the one place that tells S3 from local)."""
    loc = parse_uri(uri)
    return (_S3 if loc.is_s3 else _LOCAL), loc


def is_s3(uri: str | os.PathLike | Location) -> bool:
    return parse_uri(uri).is_s3


# -- single objects --------------------------------------------------------------------------
def exists(uri: str | os.PathLike) -> bool:
    """True for an existing file/object, or for a published directory (its manifest exists)."""
    backend, loc = backend_for(uri)
    return backend.exists(loc)


def read_bytes(uri: str | os.PathLike) -> bytes:
    backend, loc = backend_for(uri)
    return backend.read_bytes(loc)


def write_bytes(uri: str | os.PathLike, data: bytes) -> None:
    """Write one small object atomically (S3 PUT; local temp file + rename)."""
    backend, loc = backend_for(uri)
    backend.write_bytes(loc, data)


def put_file(local: str | os.PathLike, uri: str | os.PathLike) -> None:
    """Copy a local file to ``uri`` (multipart above the threshold for S3)."""
    (backend, loc), src = backend_for(uri), Path(local)
    if not src.is_file():
        raise SaeMergeError(f"{src}: no such file")
    backend.put_file(src, loc)


def get_file(uri: str | os.PathLike, local: str | os.PathLike) -> None:
    """Copy ``uri`` to a local file, replacing it atomically."""
    backend, loc = backend_for(uri)
    backend.get_file(loc, Path(local))


def list_uris(uri: str | os.PathLike, *, recursive: bool = True) -> list[str]:
    """URIs under the directory ``uri``, sorted.

    Args:
        recursive: all files below; False: the direct children, sub-directories ending in '/'.
    """
    backend, loc = backend_for(uri)
    return backend.list_uris(loc, recursive=recursive)


def ensure_bucket(uri: str | os.PathLike, create: bool = False) -> None:
    """Check that the bucket of an s3:// URI exists (create it when asked); no-op for local paths."""
    backend, loc = backend_for(uri)
    backend.ensure_bucket(loc, create=create)


# -- published directories -------------------------------------------------------------------
def read_manifest(uri: str | os.PathLike) -> dict | None:
    """The manifest of the published directory at ``uri``, or None when there is none."""
    backend, loc = backend_for(uri)
    return backend.read_manifest(loc)


# Plain s3:// directories identified in this process (URI -> listing hash): the ones
# local_input reads without a manifest, and only while their listing still gives that hash.
_IDENTIFIED_PLAIN: dict[str, str] = {}


def identify(uri: str | os.PathLike) -> dict:
    """What identifies the directory at ``uri``, for recipes and the run's record of its inputs.

    A plain ``s3://`` directory identified here may then be read by :func:`local_input`
    (a run's inputs are identified first: :func:`saemerge.steps.records.input_identity`);
    the read checks that it still has the identity found here.

    Returns:
        {"uri", "kind", "identity", "files", "total_size"}: kind "published" (identity: the
        manifest's content hash) or "plain" (S3: the listing hash; local: the files hash;
        :mod:`saemerge.storage.plain`).
    """
    backend, loc = backend_for(uri)
    info = backend.identify(loc)
    if info["kind"] == "plain" and loc.is_s3:
        _IDENTIFIED_PLAIN[loc.uri] = info["identity"]
    return info


@contextmanager
def local_input(uri: str | os.PathLike, *, verify: bool = True, require_manifest: bool = False) -> Iterator[Path]:
    """A local directory holding the directory at ``uri``; treat it as read-only.

    Local paths are used in place (verified against their manifest when they have one; a
    directory without one, such as a user's HF checkpoint, is accepted unless
    ``require_manifest``). An s3:// directory is downloaded into the cache (once per content)
    and verified against its manifest. Without one it is refused (a half-finished upload of a
    published directory has none yet), unless :func:`identify` found it to be a plain
    directory in this process: then it is read and verified against its listing
    (:mod:`saemerge.storage.plain`). While the block runs, the cache entry is pinned: the
    cache budget (:mod:`saemerge.cache.budget`) never removes it from under the reader. A
    :class:`SaeMergeError` raised in the block that names the local copy names ``uri`` instead.
    """
    backend, loc = backend_for(uri)
    plain_identity = None if require_manifest else _IDENTIFIED_PLAIN.get(loc.uri)
    fetched = backend.fetch(loc, verify=verify, require_manifest=require_manifest, plain_identity=plain_identity)
    with budget.in_use(fetched) as path:
        try:
            yield path
        except SaeMergeError as exc:
            # An error about a file in the cache names it by the URI the user gave, not the copy.
            text = str(exc)
            if loc.is_s3 and str(path) in text:
                raise SaeMergeError(text.replace(str(path), loc.uri.rstrip("/"))) from exc
            raise


@contextmanager
def local_output(uri: str | os.PathLike, *, content_hash: str | Callable[[], str] | None = None) -> Iterator[Path]:
    """An empty local directory; on clean exit its files are published atomically at ``uri``.

    Files go first and ``manifest.json`` last, so readers see all or nothing. On an exception
    nothing becomes visible at ``uri`` and the temp directory is removed. Publishing content
    identical to what ``uri`` already holds is a no-op.

    Args:
        content_hash: the caller's identity for the content (default: the files hash), or a
            function returning it, called after the body (when the content is written).
    """
    backend, loc = backend_for(uri)
    tmp = backend.output_dir(loc)
    try:
        yield tmp
        if callable(content_hash):  # known only once the body has written the content
            content_hash = content_hash()
        if (tmp / MANIFEST_NAME).exists():
            raise SaeMergeError(f"the writer of {loc.uri} created its own {MANIFEST_NAME}; it is reserved")
        backend.publish(tmp, loc, content_hash)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_dir(
    src: str | os.PathLike,
    uri: str | os.PathLike,
    *,
    replace: bool = False,
    exclude: Callable[[str], bool] = lambda rel: False,
) -> tuple[dict, bool]:
    """Publish a copy of the local directory ``src`` at ``uri`` (files, then ``manifest.json``).

    ``src`` itself is not changed, moved or linked into the cache: the files are read through
    a staging directory of symbolic links (S3) or copied (a local destination).

    Args:
        replace: replace a published directory with other content there (else an error).
        exclude: relative paths to leave out (``manifest.json`` always is: it is reserved).

    Returns:
        (the published manifest, whether anything was written: False when ``uri`` already
        held the same content).
    """
    src = Path(src)
    if not src.is_dir():
        raise SaeMergeError(f"{src}: no such directory")
    backend, loc = backend_for(uri)
    rels = [r for r in mf.list_files(src) if not exclude(r)]
    if not rels:
        raise SaeMergeError(f"{src}: nothing to publish (no files)")
    staging = backend.output_dir(loc)  # S3: in the cache (checks the bucket); local: beside the destination
    try:
        for rel in rels:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            if loc.is_s3:
                (staging / rel).symlink_to((src / rel).resolve())
            else:
                shutil.copy2(src / rel, staging / rel)
        old = read_manifest(loc.uri)
        if old is not None:
            new = mf.build_manifest(staging)
            if mf.same_content(old, new):
                return old, False
            if not replace:
                raise SaeMergeError(
                    f"{loc.uri} already holds another published directory "
                    f"(content {old['content_hash'][:16]}); pass --replace to replace it"
                )
        if loc.is_s3:
            _S3.upload_published(staging, loc, None)  # not adopted: the cache would hold links
        else:
            backend.publish(staging, loc, None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = read_manifest(loc.uri)
    assert manifest is not None
    return manifest, True
