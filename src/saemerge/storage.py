"""One interface over local paths and ``s3://bucket/prefix`` URIs, with atomic publish.

S3 endpoint and credentials come from the standard AWS environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``) or ``AWS_PROFILE``.
Transfer settings come from ``SAEMERGE_S3_MULTIPART_THRESHOLD`` / ``..._CHUNKSIZE`` (bytes, or
with a K/M/G suffix), ``SAEMERGE_S3_CONCURRENCY`` and ``SAEMERGE_S3_MAX_ATTEMPTS``, read at each
call. Transient errors (throttling, 5xx, dropped connections) are retried with botocore's
standard backoff; permanent ones (403, missing bucket, bad keys) are not, and surface as a
one-line :class:`SaeMergeError` naming the endpoint and the access key id (never the secret).

A directory is published with :func:`local_output` (written into a temp dir, then files, then
``manifest.json`` last) and read with :func:`local_input` (manifest verified; S3 directories
are downloaded once into a cache keyed by their files hash, ``$SAEMERGE_CACHE`` or
``~/.cache/saemerge``). See :mod:`saemerge.manifest` for the manifest format.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saemerge import manifest as mf
from saemerge.errors import SaeMergeError
from saemerge.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    """A parsed URI: a local ``path``, or an S3 ``bucket`` and ``key`` (no leading/trailing '/')."""

    uri: str
    path: Path | None = None
    bucket: str = ""
    key: str = ""

    @property
    def is_s3(self) -> bool:
        return self.path is None

    def child(self, rel: str) -> Location:
        return parse_uri(join(self.uri, rel))


def parse_uri(uri: str | os.PathLike | Location) -> Location:
    """Parse ``s3://bucket/key``, ``file:///path`` or a plain local path."""
    if isinstance(uri, Location):
        return uri
    text = os.fspath(uri)
    if text.startswith("s3://"):
        bucket, _, key = text[5:].partition("/")
        key = "/".join(p for p in key.split("/") if p)
        if not bucket:
            raise SaeMergeError(f"{text!r} has no bucket name (expected s3://BUCKET/PREFIX)")
        return Location(uri=f"s3://{bucket}/{key}" if key else f"s3://{bucket}", bucket=bucket, key=key)
    if "://" in text and not text.startswith("file://"):
        raise SaeMergeError(f"{text!r}: unsupported URI scheme (use a local path or s3://)")
    path = Path(text.removeprefix("file://")).expanduser()
    return Location(uri=str(path), path=path)


def is_s3(uri: str | os.PathLike | Location) -> bool:
    return parse_uri(uri).is_s3


def join(uri: str | os.PathLike, *parts: str) -> str:
    """Join path parts onto a URI: ``join("s3://b/run", "gen-00", "x.parquet")``."""
    text = os.fspath(uri)
    if text.startswith("s3://"):
        pieces = [text.rstrip("/")] + [p.strip("/") for p in parts if p.strip("/")]
        return "/".join(pieces)
    return str(Path(text, *parts))


def cache_root() -> Path:
    return Path(os.environ.get("SAEMERGE_CACHE") or "~/.cache/saemerge").expanduser()


def scratch_dir(prefix: str) -> Path:
    """A new private directory under the cache (same filesystem as cached downloads)."""
    root = cache_root() / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


# -- single objects --------------------------------------------------------------------------
def exists(uri: str | os.PathLike) -> bool:
    """True for an existing file/object, or for a published directory (its manifest exists)."""
    loc = parse_uri(uri)
    if not loc.is_s3:
        return loc.path.is_file() or (loc.path / MANIFEST_NAME).is_file()
    return _s3_head(loc.child(MANIFEST_NAME)) or (bool(loc.key) and _s3_head(loc))


def read_bytes(uri: str | os.PathLike) -> bytes:
    loc = parse_uri(uri)
    if loc.is_s3:
        data = _s3_get_bytes(loc)
        if data is None:
            raise SaeMergeError(f"{loc.uri}: no such object")
        return data
    try:
        return loc.path.read_bytes()
    except FileNotFoundError:
        raise SaeMergeError(f"{loc.uri}: no such file") from None


def _write_local_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(uri: str | os.PathLike, data: bytes) -> None:
    """Write one small object atomically (S3 PUT; local temp file + rename)."""
    loc = parse_uri(uri)
    if loc.is_s3:
        _s3_put_bytes(loc, data)
    else:
        _write_local_atomic(loc.path, data)


def put_file(local: str | os.PathLike, uri: str | os.PathLike) -> None:
    """Copy a local file to ``uri`` (multipart above the threshold for S3)."""
    loc, src = parse_uri(uri), Path(local)
    if not src.is_file():
        raise SaeMergeError(f"{src}: no such file")
    if loc.is_s3:
        _s3_upload([(src, loc)])
    else:
        loc.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = loc.path.with_name(f".{loc.path.name}.tmp-{secrets.token_hex(4)}")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, loc.path)
        finally:
            tmp.unlink(missing_ok=True)


def get_file(uri: str | os.PathLike, local: str | os.PathLike) -> None:
    """Copy ``uri`` to a local file, replacing it atomically."""
    loc, dest = parse_uri(uri), Path(local)
    if not loc.is_s3:
        put_file(loc.path, dest)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(4)}")
    try:
        _s3_download([(loc, tmp)])
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def list_uris(uri: str | os.PathLike, *, recursive: bool = True) -> list[str]:
    """URIs under the directory ``uri``, sorted.

    Args:
        recursive: all files below; False: the direct children, sub-directories ending in '/'.
    """
    loc = parse_uri(uri)
    if loc.is_s3:
        return _s3_list(loc, recursive=recursive)
    if not loc.path.is_dir():
        return []
    if recursive:
        return [str(loc.path / rel) for rel in mf.list_files(loc.path, keep_manifest=True)]
    return sorted(str(p) + ("/" if p.is_dir() else "") for p in loc.path.iterdir())


list = list_uris  # noqa: A001 -- the name callers use; this module never calls the builtin


def ensure_bucket(uri: str | os.PathLike, create: bool = False) -> None:
    """Check that the bucket of an s3:// URI exists (create it when asked); no-op for local paths."""
    loc = parse_uri(uri)
    if loc.is_s3:
        _s3_ensure_bucket(loc, create=create)


# -- published directories -------------------------------------------------------------------
def read_manifest(uri: str | os.PathLike) -> dict | None:
    """The manifest of the published directory at ``uri``, or None when there is none."""
    loc = parse_uri(uri).child(MANIFEST_NAME)
    if loc.is_s3:
        data = _s3_get_bytes(loc)
    else:
        data = loc.path.read_bytes() if loc.path.is_file() else None
    return None if data is None else mf.loads(data, loc.uri)


@contextmanager
def local_input(uri: str | os.PathLike, *, verify: bool = True,
                require_manifest: bool = False) -> Iterator[Path]:
    """A local directory holding the directory at ``uri``; treat it as read-only.

    Local paths are used in place (verified against their manifest when they have one; a
    directory without one, such as a user's HF checkpoint, is accepted unless
    ``require_manifest``). An s3:// directory must be published; it is downloaded into the
    cache (once per content) and verified.
    """
    loc = parse_uri(uri)
    if not loc.is_s3:
        if not loc.path.is_dir():
            raise SaeMergeError(f"{loc.uri}: no such directory")
        manifest = read_manifest(loc)
        if manifest is None and require_manifest:
            raise SaeMergeError(f"{loc.uri} has no {MANIFEST_NAME}: not a published directory")
        if manifest is not None and verify:
            mf.verify_dir(loc.path, manifest, loc.uri)
        yield loc.path
        return
    manifest = read_manifest(loc)
    if manifest is None:
        raise SaeMergeError(
            f"{loc.uri} has no {MANIFEST_NAME}: not a published directory "
            "(missing, or its upload did not finish)")
    yield _fetch_to_cache(loc, manifest, verify)


def _fetch_to_cache(loc: Location, manifest: dict, verify: bool) -> Path:
    dest = cache_root() / "objects" / manifest["files_hash"]
    if dest.is_dir():
        try:  # entries are verified when stored; re-check presence and sizes only
            mf.verify_dir(dest, manifest, str(dest), check_hashes=False)
            log.info("using cached copy of %s at %s", loc.uri, dest)
            with suppress(OSError):  # last use, for `saemerge cache prune` (LRU)
                os.utime(dest)
            return dest
        except SaeMergeError as exc:
            log.warning("cache entry is damaged (%s); downloading again", exc)
            shutil.rmtree(dest, ignore_errors=True)
    tmp = scratch_dir("in-")
    try:
        pairs = [(loc.child(f["path"]), tmp / f["path"]) for f in manifest["files"]]
        expected = {tmp / f["path"]: f["sha256"] for f in manifest["files"]} if verify else None
        sizes = {tmp / f["path"]: f["size"] for f in manifest["files"]}
        _s3_download(pairs, sizes=sizes, expected_sha256=expected, desc=loc.uri)
        mf.verify_dir(tmp, manifest, loc.uri, check_hashes=False)
        (tmp / MANIFEST_NAME).write_bytes(mf.dumps(manifest))
        _install_in_cache(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _install_in_cache(tmp: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, dest)
    except OSError:
        if not dest.is_dir():  # not a concurrent writer of the same content
            raise


@contextmanager
def local_output(
    uri: str | os.PathLike, *, content_hash: str | Callable[[], str] | None = None
) -> Iterator[Path]:
    """An empty local directory; on clean exit its files are published atomically at ``uri``.

    Files go first and ``manifest.json`` last, so readers see all or nothing. On an exception
    nothing becomes visible at ``uri`` and the temp directory is removed. Publishing content
    identical to what ``uri`` already holds is a no-op.

    Args:
        content_hash: the caller's identity for the content (default: the files hash), or a
            function returning it, called after the body (when the content is written).
    """
    loc = parse_uri(uri)
    if loc.is_s3:
        _s3_ensure_bucket(loc, create=False)  # fail before the caller does the work
        tmp = scratch_dir("out-")
    else:
        loc.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = loc.path.parent / f".{loc.path.name}.tmp-{secrets.token_hex(4)}"
        tmp.mkdir()
    try:
        yield tmp
        if callable(content_hash):  # known only once the body has written the content
            content_hash = content_hash()
        if (tmp / MANIFEST_NAME).exists():
            raise SaeMergeError(f"the writer of {loc.uri} created its own {MANIFEST_NAME}; it is reserved")
        if loc.is_s3:
            manifest = _publish_s3(tmp, loc, content_hash)
            (tmp / MANIFEST_NAME).write_bytes(mf.dumps(manifest))
            dest = cache_root() / "objects" / manifest["files_hash"]
            if not dest.exists():  # a later local_input of this URI needs no download
                _install_in_cache(tmp, dest)
        else:
            _publish_local(tmp, loc, content_hash)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish_local(tmp: Path, loc: Location, content_hash: str | None) -> None:
    final = loc.path
    manifest = mf.build_manifest(tmp, content_hash=content_hash)
    aside = None
    if final.exists():
        old = read_manifest(final) if final.is_dir() else None
        if mf.same_content(old, manifest):
            log.info("%s already holds identical content (%s); nothing to publish",
                     loc.uri, manifest["content_hash"][:16])
            return
        if old is not None:
            log.warning("replacing the published directory %s (content %s -> %s)",
                        loc.uri, old["content_hash"][:16], manifest["content_hash"][:16])
            aside = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
            os.rename(final, aside)
        elif final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        else:
            raise SaeMergeError(f"{loc.uri} exists and is not a published directory "
                                f"(no {MANIFEST_NAME}); refusing to replace it")
    (tmp / MANIFEST_NAME).write_bytes(mf.dumps(manifest))
    try:
        os.rename(tmp, final)
    except OSError:
        # Another writer published first: fine when it holds the same content.
        if not mf.same_content(read_manifest(final), manifest):
            raise
        log.info("%s was published concurrently with identical content", loc.uri)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    log.info("published %s (%d files, %.1f MB, content %s)", loc.uri, len(manifest["files"]),
             manifest["total_size"] / 1e6, manifest["content_hash"][:16])


def _publish_s3(tmp: Path, loc: Location, content_hash: str | None) -> dict:
    """Upload files, then the manifest; return the manifest."""
    try:
        old = read_manifest(loc)
    except SaeMergeError as exc:  # a corrupt manifest is replaced like any other content
        log.warning("%s", exc)
        old = None
    rels = mf.list_files(tmp)
    pairs = [(tmp / rel, loc.child(rel)) for rel in rels]
    if old is not None:
        manifest = mf.build_manifest(tmp, content_hash=content_hash)
        if mf.same_content(old, manifest):
            log.info("%s already holds identical content (%s); nothing to upload",
                     loc.uri, manifest["content_hash"][:16])
            return manifest
        log.warning("replacing the published directory %s (content %s -> %s)",
                    loc.uri, old["content_hash"][:16], manifest["content_hash"][:16])
        _s3_delete(loc.bucket, [loc.child(MANIFEST_NAME).key])  # invisible while replaced
        _s3_upload(pairs, desc=loc.uri)
    else:
        # Hash while uploading: both read the same files, the page cache serves the second.
        digests = _s3_upload(pairs, desc=loc.uri, hash_files=True)
        manifest = mf.build_manifest(tmp, content_hash=content_hash,
                                     known_sha256={rel: digests[tmp / rel] for rel in rels})
    _s3_put_bytes(loc.child(MANIFEST_NAME), mf.dumps(manifest))
    if old is not None:
        stale = {f["path"] for f in old["files"]} - set(rels)
        _s3_delete(loc.bucket, [loc.child(rel).key for rel in sorted(stale)])
    log.info("published %s (%d files, %.1f MB, content %s)", loc.uri, len(manifest["files"]),
             manifest["total_size"] / 1e6, manifest["content_hash"][:16])
    return manifest


# -- S3 plumbing -----------------------------------------------------------------------------
_MIB = 1 << 20
# A client is cached per value of these, so a changed environment (tests, a second store)
# gets a new client.
_AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION",
             "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
_CLIENTS: dict[tuple, _Conn] = {}
_CLIENTS_LOCK = threading.Lock()
_MISSING = {"404", "NoSuchKey", "NotFound"}
_HINTS = {
    "SignatureDoesNotMatch": "the secret access key is wrong for this access key id",
    "InvalidAccessKeyId": "this access key id is not known to the endpoint",
    "AccessDenied": "access denied for this identity (read-only credentials?)",
    "403": "access denied (wrong credentials, or no permission)",
    "NoSuchBucket": "the bucket does not exist",
    "InvalidBucketName": "invalid bucket name",
    "NoSuchKey": "no such object",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is invalid",
}


@dataclass(frozen=True)
class _Conn:
    client: Any
    endpoint: str
    access_key: str  # the id only: it goes into messages, the secret never does


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(raw[-1].upper(), 1)
    try:
        return int(float(raw[:-1] if mult > 1 else raw) * mult)
    except ValueError:
        raise SaeMergeError(f"{name}={raw!r} is not a number (e.g. 8, 64M)") from None


def transfer_config():
    """boto3 TransferConfig from SAEMERGE_S3_* (multipart threshold/chunk size, concurrency)."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=_env_int("SAEMERGE_S3_MULTIPART_THRESHOLD", 16 * _MIB),
        multipart_chunksize=_env_int("SAEMERGE_S3_MULTIPART_CHUNKSIZE", 16 * _MIB),
        max_concurrency=_env_int("SAEMERGE_S3_CONCURRENCY", 8),
        use_threads=True,
    )


def _quiet_aws_loggers() -> None:
    """Keep botocore & co. out of DEBUG when the app turns DEBUG on for everything (`-v`).

    Their debug logs carry request headers, session tokens among them. A level the application
    set explicitly is left alone; SAEMERGE_AWS_DEBUG=1 lets them through.
    """
    if os.environ.get("SAEMERGE_AWS_DEBUG") == "1":
        return
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)


def _conn() -> _Conn:
    import boto3
    from botocore.config import Config

    attempts = _env_int("SAEMERGE_S3_MAX_ATTEMPTS", 5)
    concurrency = _env_int("SAEMERGE_S3_CONCURRENCY", 8)
    key = tuple(os.environ.get(v) for v in _AWS_VARS) + (attempts, concurrency)
    with _CLIENTS_LOCK:
        if key in _CLIENTS:
            return _CLIENTS[key]
        _quiet_aws_loggers()
        session = boto3.session.Session()
        creds = session.get_credentials()
        if creds is None:
            raise SaeMergeError("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                "(and AWS_ENDPOINT_URL), or AWS_PROFILE")
        custom_endpoint = bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"))
        config = Config(
            # standard mode: retries throttling, 5xx and dropped connections with backoff,
            # never 4xx such as a bad signature.
            retries={"mode": "standard", "total_max_attempts": attempts},
            connect_timeout=10, read_timeout=120,
            max_pool_connections=max(10, 2 * concurrency),
            s3={"addressing_style": "path"} if custom_endpoint else None,
        )
        client = session.client("s3", region_name=session.region_name or "us-east-1", config=config)
        conn = _Conn(client, client.meta.endpoint_url, creds.access_key)
        _CLIENTS[key] = conn
        return conn


def s3_client():
    """The boto3 S3 client for the current environment (shared; e.g. to register event hooks)."""
    return _conn().client


def _find(exc: BaseException | None, types) -> BaseException | None:
    """The first exception of ``types`` in exc's chain (cause, context, s3transfer's last_exception)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, types):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "last_exception", None) or exc.__cause__ or exc.__context__
    return None


def _translate(exc: BaseException, conn: _Conn, what: str, uri: str) -> SaeMergeError | None:
    """A one-line SaeMergeError for an S3 failure, or None for errors that are not S3's."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
    from s3transfer.exceptions import RetriesExceededError

    where = f"(endpoint {conn.endpoint}, access key id {conn.access_key})"
    if client_err := _find(exc, ClientError):
        error = client_err.response.get("Error", {})
        code = str(error.get("Code") or client_err.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        detail = _HINTS.get(code) or error.get("Message") or "request failed"
        retries = client_err.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        tries = f" after {retries + 1} attempts" if retries else ""
        text = f"S3 {what} {uri} failed{tries}: {code}: {detail} {where}"
    elif conn_err := _find(exc, (ConnectionError, HTTPClientError)):
        text = (f"S3 {what} {uri} failed: cannot reach the endpoint after retries "
                f"({type(conn_err).__name__}) {where}")
    elif other := _find(exc, (BotoCoreError, Boto3Error, RetriesExceededError)):
        text = f"S3 {what} {uri} failed: {str(other).splitlines()[0]} {where}"
    else:
        return None
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if secret and len(secret) >= 8:  # belt and braces: no message may carry the secret
        text = text.replace(secret, "***")
    return SaeMergeError(text)


@contextmanager
def _s3_errors(conn: _Conn, what: str, uri: str) -> Iterator[None]:
    try:
        yield
    except SaeMergeError:
        raise
    except Exception as exc:
        err = _translate(exc, conn, what, uri)
        if err is None:
            raise
        raise err from exc


def _is_missing(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in _MISSING


def _s3_head(loc: Location) -> bool:
    conn = _conn()
    with _s3_errors(conn, "HEAD", loc.uri):
        try:
            conn.client.head_object(Bucket=loc.bucket, Key=loc.key)
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
    return True


def _s3_get_bytes(loc: Location) -> bytes | None:
    """The object's bytes, or None when there is no such key (a missing bucket is an error)."""
    conn = _conn()
    with _s3_errors(conn, "GET", loc.uri):
        try:
            return conn.client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise


def _s3_put_bytes(loc: Location, data: bytes) -> None:
    conn = _conn()
    with _s3_errors(conn, "PUT", loc.uri):
        conn.client.put_object(Bucket=loc.bucket, Key=loc.key, Body=data)


def _s3_delete(bucket: str, keys: list[str]) -> None:
    conn = _conn()
    for start in range(0, len(keys), 1000):
        batch = keys[start:start + 1000]
        with _s3_errors(conn, "DELETE in", f"s3://{bucket}"):
            conn.client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})


def _s3_list(loc: Location, *, recursive: bool) -> list[str]:
    conn = _conn()
    kwargs = {"Bucket": loc.bucket, "Prefix": f"{loc.key}/" if loc.key else ""}
    if not recursive:
        kwargs["Delimiter"] = "/"
    out = []
    with _s3_errors(conn, "LIST", loc.uri):
        for page in conn.client.get_paginator("list_objects_v2").paginate(**kwargs):
            out += [f"s3://{loc.bucket}/{o['Key']}" for o in page.get("Contents", [])]
            out += [f"s3://{loc.bucket}/{p['Prefix']}" for p in page.get("CommonPrefixes", [])]
    return sorted(out)


def _s3_ensure_bucket(loc: Location, *, create: bool) -> None:
    conn = _conn()
    with _s3_errors(conn, "HEAD bucket", f"s3://{loc.bucket}"):
        try:
            conn.client.head_bucket(Bucket=loc.bucket)
            return
        except Exception as exc:
            if not (_is_missing(exc) or "NoSuchBucket" in str(exc)):
                raise
    if not create:
        raise SaeMergeError(
            f"bucket {loc.bucket!r} does not exist (endpoint {conn.endpoint}, access key id "
            f"{conn.access_key}); create it, or pass create=True / --create-bucket")
    with _s3_errors(conn, "CREATE bucket", f"s3://{loc.bucket}"):
        region = conn.client.meta.region_name
        extra = {} if region in (None, "us-east-1") else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        conn.client.create_bucket(Bucket=loc.bucket, **extra)
    log.info("created bucket %s at %s", loc.bucket, conn.endpoint)


def _subscribers(bar, size: int | None = None) -> list:
    from s3transfer.subscribers import BaseSubscriber

    class Progress(BaseSubscriber):
        def on_queued(self, future, **kwargs):
            if size is not None:  # known from the manifest: saves a HEAD per download
                future.meta.provide_transfer_size(size)

        def on_progress(self, future, bytes_transferred, **kwargs):
            bar.update(bytes_transferred)

    return [Progress()]


def _progress_bar(total: int, desc: str):
    from tqdm.auto import tqdm

    # Shown on a terminal for transfers worth watching; logs say the rest.
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                disable=None if total >= 64 * _MIB else True)


def _s3_upload(pairs: list[tuple[Path, Location]], *, desc: str | None = None,
               hash_files: bool = False) -> dict[Path, str]:
    """Upload local files (multipart above the threshold, files and parts concurrently).

    Returns:
        sha256 of each source file when ``hash_files`` (computed while uploading), else {}.
    """
    from boto3.s3.transfer import create_transfer_manager

    conn = _conn()
    total = sum(src.stat().st_size for src, _ in pairs)
    where = desc or (pairs[0][1].uri if pairs else "")
    log.info("uploading %d file(s), %.1f MB, to %s", len(pairs), total / 1e6, where)
    with _progress_bar(total, f"upload {where}") as bar, _s3_errors(conn, "upload to", where):
        with create_transfer_manager(conn.client, transfer_config()) as tm, \
                ThreadPoolExecutor(max_workers=2) as hashers:
            futures = [tm.upload(str(src), dst.bucket, dst.key, subscribers=_subscribers(bar))
                       for src, dst in pairs]
            hashes = {src: hashers.submit(mf.sha256_file, src) for src, _ in pairs} if hash_files else {}
            for fut, (_src, dst) in zip(futures, pairs):
                fut.result()
                log.debug("uploaded %s", dst.uri)
            return {src: h.result() for src, h in hashes.items()}


def _s3_download(pairs: list[tuple[Location, Path]], *, sizes: dict[Path, int] | None = None,
                 expected_sha256: dict[Path, str] | None = None, desc: str | None = None) -> None:
    """Download objects to local paths; check each file's sha256 when ``expected_sha256`` is given.

    Hashing a finished file overlaps with the downloads still running.
    """
    from boto3.s3.transfer import create_transfer_manager

    conn = _conn()
    sizes = sizes or {}
    total = sum(sizes.values())
    where = desc or (pairs[0][0].uri if pairs else "")
    log.info("downloading %d file(s)%s from %s", len(pairs), f", {total / 1e6:.1f} MB" if total else "", where)
    for _, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
    with _progress_bar(total, f"download {where}") as bar, _s3_errors(conn, "download from", where):
        with create_transfer_manager(conn.client, transfer_config()) as tm, \
                ThreadPoolExecutor(max_workers=2) as hashers:
            futures = [tm.download(src.bucket, src.key, str(dst),
                                   subscribers=_subscribers(bar, sizes.get(dst)))
                       for src, dst in pairs]
            checks = []
            for fut, (src, dst) in zip(futures, pairs):
                fut.result()
                if expected_sha256 is not None:
                    checks.append((src, hashers.submit(mf.sha256_file, dst), expected_sha256[dst]))
            for src, digest, want in checks:
                if digest.result() != want:
                    raise SaeMergeError(f"{src.uri} does not match the sha256 in its manifest "
                                        "(changed after publishing?)")
