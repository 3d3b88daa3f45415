"""The S3 backend: objects, multipart transfers with progress bars, publish and cached fetch.

A published directory is its files under ``s3://bucket/prefix/`` plus ``manifest.json``,
uploaded last. A read downloads it once into the content-keyed cache
(:mod:`saemerge.cache.downloads`). A plain directory (no manifest: a user's HF checkpoint) is
read too, keyed and verified by its listing (:mod:`saemerge.storage.plain`). Connection, settings and error messages are
:mod:`saemerge.storage.s3_conn`'s.
"""

from __future__ import annotations

import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from saemerge.cache import downloads
from saemerge.errors import SaeMergeError
from saemerge.storage import plain
from saemerge.storage.s3_conn import MIB, conn, is_missing, s3_errors, store_disk_full, transfer_config
from saemerge.storage.uri import Location
from saemerge.util import manifest as mf
from saemerge.util.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)


class S3Backend:
    """``s3://bucket/key`` locations (``Location.bucket`` and ``.key``)."""

    def exists(self, loc: Location) -> bool:
        """An object at the key, or a published directory there; errors name `loc`, not its manifest."""
        return (bool(loc.key) and self._head(loc)) or self._head(loc.child(MANIFEST_NAME), named=loc.uri)

    def read_bytes(self, loc: Location) -> bytes:
        data = self._get_bytes(loc)
        if data is None:
            raise SaeMergeError(f"{loc.uri}: no such object")
        return data

    def write_bytes(self, loc: Location, data: bytes) -> None:
        _check_store_space(len(data), loc.uri)
        c = conn()
        with s3_errors(c, "PUT", loc.uri):
            c.client.put_object(Bucket=loc.bucket, Key=loc.key, Body=data)

    def put_file(self, src: Path, loc: Location) -> None:
        _upload([(src, loc)])

    def get_file(self, loc: Location, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(4)}")
        try:
            _download([(loc, tmp)])
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def list_uris(self, loc: Location, *, recursive: bool) -> list[str]:
        c = conn()
        kwargs = {"Bucket": loc.bucket, "Prefix": f"{loc.key}/" if loc.key else ""}
        if not recursive:
            kwargs["Delimiter"] = "/"
        out = []
        with s3_errors(c, "LIST", loc.uri):
            for page in c.client.get_paginator("list_objects_v2").paginate(**kwargs):
                out += [f"s3://{loc.bucket}/{o['Key']}" for o in page.get("Contents", [])]
                out += [f"s3://{loc.bucket}/{p['Prefix']}" for p in page.get("CommonPrefixes", [])]
        return sorted(out)

    def ensure_bucket(self, loc: Location, *, create: bool) -> None:
        c = conn()
        with s3_errors(c, "HEAD bucket", f"s3://{loc.bucket}"):
            try:
                c.client.head_bucket(Bucket=loc.bucket)
                return
            except Exception as exc:
                if not (is_missing(exc) or "NoSuchBucket" in str(exc)):
                    raise
        if not create:
            raise SaeMergeError(
                f"bucket {loc.bucket!r} does not exist (endpoint {c.endpoint}, access key id "
                f"{c.access_key}); create it, or pass create=True / --create-bucket"
            )
        with s3_errors(c, "CREATE bucket", f"s3://{loc.bucket}"):
            region = c.client.meta.region_name
            extra = (
                {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            )
            c.client.create_bucket(Bucket=loc.bucket, **extra)
        log.info("created bucket %s at %s", loc.bucket, c.endpoint)

    def read_manifest(self, loc: Location) -> dict | None:
        target = loc.child(MANIFEST_NAME)
        data = self._get_bytes(target)
        return None if data is None else mf.loads(data, target.uri)

    def listing(self, loc: Location) -> list[dict]:
        """Every object under the directory ``loc``: [{"path" (relative), "size", "etag"}], sorted."""
        c = conn()
        prefix = f"{loc.key}/" if loc.key else ""
        out = []
        with s3_errors(c, "LIST", loc.uri):
            for page in c.client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
                for o in page.get("Contents", []):
                    rel = o["Key"][len(prefix) :]
                    if rel and not rel.endswith("/"):  # "folder" marker objects hold nothing
                        out.append({"path": rel, "size": int(o["Size"]), "etag": str(o.get("ETag", "")).strip('"')})
        return sorted(out, key=lambda e: e["path"])

    def identify(self, loc: Location) -> dict:
        """What identifies the directory: its manifest's content hash, else its listing hash."""
        manifest = self.read_manifest(loc)
        if manifest is not None:
            return {
                "uri": loc.uri,
                "kind": "published",
                "identity": manifest["content_hash"],
                "files": len(manifest["files"]),
                "total_size": manifest["total_size"],
            }
        entries = self._plain_listing(loc)
        return {
            "uri": loc.uri,
            "kind": "plain",
            "identity": plain.listing_hash(entries),
            "files": len(entries),
            "total_size": sum(e["size"] for e in entries),
        }

    def _plain_listing(self, loc: Location) -> list[dict]:
        entries = self.listing(loc)
        if not entries:
            raise SaeMergeError(f"{loc.uri}: no such directory (no objects under this prefix)")
        plain.check_paths(entries, loc.uri)
        return entries

    def fetch(self, loc: Location, *, verify: bool, require_manifest: bool, plain_identity: str | None) -> Path:
        """The cache's copy of the directory (downloaded once per content).

        A published directory is checked against its manifest; a plain one (no manifest) is
        read only when identified beforehand (``plain_identity``, its listing hash then) and
        checked against its listing (:mod:`saemerge.storage.plain`).
        """
        manifest = self.read_manifest(loc)
        if manifest is None:
            if require_manifest or plain_identity is None:
                raise SaeMergeError(
                    f"{loc.uri} has no {MANIFEST_NAME}: not a published directory "
                    "(missing, or its upload did not finish; a plain checkpoint is read as a run's "
                    "expert or base only)"
                )
            return self._fetch_plain(loc, plain_identity)

        def download(tmp: Path) -> None:
            files = manifest["files"]
            pairs = [(loc.child(f["path"]), tmp / f["path"]) for f in files]
            expected = {tmp / f["path"]: f["sha256"] for f in files} if verify else None
            _download(pairs, sizes={tmp / f["path"]: f["size"] for f in files}, expected_sha256=expected, desc=loc.uri)

        return downloads.fetch(manifest, loc.uri, download)

    def _fetch_plain(self, loc: Location, identity: str) -> Path:
        entries = self._plain_listing(loc)
        key = plain.listing_hash(entries)
        if key != identity:
            raise SaeMergeError(
                f"{loc.uri}: objects changed since it was identified ({identity[:16]} -> "
                f"{key[:16]}); an input must not change during a run"
            )

        def download(tmp: Path) -> dict:
            log.info(
                "%s has no %s: reading it as a plain directory (identity %s from its listing)",
                loc.uri,
                MANIFEST_NAME,
                key[:16],
            )
            _download(
                [(loc.child(e["path"]), tmp / e["path"]) for e in entries],
                sizes={tmp / e["path"]: e["size"] for e in entries},
                desc=loc.uri,
            )
            digests = plain.verify_download(tmp, entries, loc.uri)
            if plain.listing_hash(self.listing(loc)) != key:
                raise SaeMergeError(f"{loc.uri}: objects changed while it was read; read it again")
            return mf.build_manifest(tmp, content_hash=key, known_sha256=digests)

        return downloads.fetch_keyed(key, loc.uri, download, size=sum(e["size"] for e in entries))

    def output_dir(self, loc: Location) -> Path:
        """A directory in the cache (it becomes the cache entry once uploaded)."""
        self.ensure_bucket(loc, create=False)  # fail before the caller does the work
        return downloads.scratch_dir("out-")

    def publish(self, tmp: Path, loc: Location, content_hash: str | None) -> None:
        """Upload files, then the manifest; keep ``tmp`` as the cache entry of its content."""
        manifest = self.upload_published(tmp, loc, content_hash)
        downloads.adopt(tmp, manifest)  # a later local_input of this URI needs no download

    def upload_published(self, tmp: Path, loc: Location, content_hash: str | None) -> dict:
        """Upload the files under ``tmp`` (links followed), then the manifest; return it."""
        try:
            old = self.read_manifest(loc)
        except SaeMergeError as exc:  # a corrupt manifest is replaced like any other content
            log.warning("%s", exc)
            old = None
        rels = mf.list_files(tmp)
        pairs = [(tmp / rel, loc.child(rel)) for rel in rels]
        if old is not None:
            manifest = mf.build_manifest(tmp, content_hash=content_hash)
            if mf.same_content(old, manifest):
                log.info(
                    "%s already holds identical content (%s); nothing to upload", loc.uri, manifest["content_hash"][:16]
                )
                return manifest
            log.warning(
                "replacing the published directory %s (content %s -> %s)",
                loc.uri,
                old["content_hash"][:16],
                manifest["content_hash"][:16],
            )
            self._delete(loc.bucket, [loc.child(MANIFEST_NAME).key])  # invisible while replaced
            _upload(pairs, desc=loc.uri)
        else:
            # Hash while uploading: both read the same files, the page cache serves the second.
            digests = _upload(pairs, desc=loc.uri, hash_files=True)
            manifest = mf.build_manifest(
                tmp, content_hash=content_hash, known_sha256={rel: digests[tmp / rel] for rel in rels}
            )
        self.write_bytes(loc.child(MANIFEST_NAME), mf.dumps(manifest))
        if old is not None:
            stale = {f["path"] for f in old["files"]} - set(rels)
            self._delete(loc.bucket, [loc.child(rel).key for rel in sorted(stale)])
        log.info(
            "published %s (%d files, %.1f MB, content %s)",
            loc.uri,
            len(manifest["files"]),
            manifest["total_size"] / 1e6,
            manifest["content_hash"][:16],
        )
        return manifest

    def _head(self, loc: Location, named: str | None = None) -> bool:
        c = conn()
        with s3_errors(c, "HEAD", named or loc.uri):
            try:
                c.client.head_object(Bucket=loc.bucket, Key=loc.key)
            except Exception as exc:
                if is_missing(exc):
                    return False
                raise
        return True

    def _get_bytes(self, loc: Location) -> bytes | None:
        """The object's bytes, or None when there is no such key (a missing bucket is an error)."""
        c = conn()
        with s3_errors(c, "GET", loc.uri):
            try:
                return c.client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
            except Exception as exc:
                if is_missing(exc):
                    return None
                raise

    def _delete(self, bucket: str, keys: list[str]) -> None:
        c = conn()
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            with s3_errors(c, "DELETE in", f"s3://{bucket}"):
                c.client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})


# -- transfers -------------------------------------------------------------------------------
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
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        disable=None if total >= 64 * MIB else True,
    )


def _check_store_space(need: int, uri: str) -> None:
    """Fail at once, naming the store's directory and its free space, when the embedded store's
    disk cannot take `need` more bytes: it would answer InternalError, after minutes of retries."""
    if full := store_disk_full(need):
        raise SaeMergeError(f"S3 write to {uri} refused: {full}")


def _upload(
    pairs: list[tuple[Path, Location]], *, desc: str | None = None, hash_files: bool = False
) -> dict[Path, str]:
    """Upload local files (multipart above the threshold, files and parts concurrently).

    Returns:
        sha256 of each source file when ``hash_files`` (computed while uploading), else {}.
    """
    from boto3.s3.transfer import create_transfer_manager

    c = conn()
    total = sum(src.stat().st_size for src, _ in pairs)
    where = desc or (pairs[0][1].uri if pairs else "")
    _check_store_space(total, where)
    log.info("uploading %d file(s), %.1f MB, to %s", len(pairs), total / 1e6, where)
    with _progress_bar(total, f"upload {where}") as bar, s3_errors(c, "upload to", where):
        with create_transfer_manager(c.client, transfer_config()) as tm, ThreadPoolExecutor(max_workers=2) as hashers:
            futures = [tm.upload(str(src), dst.bucket, dst.key, subscribers=_subscribers(bar)) for src, dst in pairs]
            hashes = {src: hashers.submit(mf.sha256_file, src) for src, _ in pairs} if hash_files else {}
            for fut, (_src, dst) in zip(futures, pairs):
                fut.result()
                log.debug("uploaded %s", dst.uri)
            return {src: h.result() for src, h in hashes.items()}


def _download(
    pairs: list[tuple[Location, Path]],
    *,
    sizes: dict[Path, int] | None = None,
    expected_sha256: dict[Path, str] | None = None,
    desc: str | None = None,
) -> None:
    """Download objects to local paths; check each file's sha256 when ``expected_sha256`` is given.

    Hashing a finished file overlaps with the downloads still running.
    """
    from boto3.s3.transfer import create_transfer_manager

    c = conn()
    sizes = sizes or {}
    total = sum(sizes.values())
    where = desc or (pairs[0][0].uri if pairs else "")
    log.info("downloading %d file(s)%s from %s", len(pairs), f", {total / 1e6:.1f} MB" if total else "", where)
    for _, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
    with _progress_bar(total, f"download {where}") as bar, s3_errors(c, "download from", where):
        with create_transfer_manager(c.client, transfer_config()) as tm, ThreadPoolExecutor(max_workers=2) as hashers:
            futures = [
                tm.download(src.bucket, src.key, str(dst), subscribers=_subscribers(bar, sizes.get(dst)))
                for src, dst in pairs
            ]
            checks = []
            for fut, (src, dst) in zip(futures, pairs):
                fut.result()
                if expected_sha256 is not None:
                    checks.append((src, hashers.submit(mf.sha256_file, dst), expected_sha256[dst]))
            for src, digest, want in checks:
                if digest.result() != want:
                    raise SaeMergeError(
                        f"{src.uri} does not match the sha256 in its manifest (changed after publishing?)"
                    )
