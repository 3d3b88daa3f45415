"""The local-path backend: atomic writes by temp file + rename, publish by renaming a directory."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

from saemerge.cache.downloads import cache_root
from saemerge.errors import SaeMergeError
from saemerge.storage import plain
from saemerge.storage.uri import Location
from saemerge.util import manifest as mf
from saemerge.util.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)


def _temp_name(path: Path) -> Path:
    """A hidden sibling of ``path``: same filesystem, so a rename onto ``path`` is atomic."""
    return path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")


def _local(loc: Location) -> Path:
    """``loc``'s path: :func:`saemerge.storage.backend_for` gives this backend local locations only."""
    assert loc.path is not None, f"{loc.uri} is not a local path"
    return loc.path


def _read_manifest(path: Path) -> dict | None:
    file = path / MANIFEST_NAME
    return mf.loads(file.read_bytes(), str(file)) if file.is_file() else None


class LocalBackend:
    """Local paths (``Location.path``)."""

    def exists(self, loc: Location) -> bool:
        path = _local(loc)
        return path.is_file() or (path / MANIFEST_NAME).is_file()

    def read_bytes(self, loc: Location) -> bytes:
        try:
            return _local(loc).read_bytes()
        except FileNotFoundError:
            raise SaeMergeError(f"{loc.uri}: no such file") from None

    def write_bytes(self, loc: Location, data: bytes) -> None:
        path = _local(loc)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(path)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, src: Path, loc: Location) -> None:
        path = _local(loc)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(path)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def get_file(self, loc: Location, dest: Path) -> None:
        path = _local(loc)
        if not path.is_file():
            raise SaeMergeError(f"{path}: no such file")
        self.put_file(path, Location(uri=str(dest), path=dest))

    def list_uris(self, loc: Location, *, recursive: bool) -> list[str]:
        path = _local(loc)
        if not path.is_dir():
            return []
        if recursive:
            return [str(path / rel) for rel in mf.list_files(path, keep_manifest=True)]
        return sorted(str(p) + ("/" if p.is_dir() else "") for p in path.iterdir())

    def ensure_bucket(self, loc: Location, *, create: bool) -> None:
        """Nothing to check: a local directory is created when written."""

    def read_manifest(self, loc: Location) -> dict | None:
        return _read_manifest(_local(loc))

    def identify(self, loc: Location) -> dict:
        """Its manifest's content hash, else its files hash (remembered in the cache per stat)."""
        path = _local(loc)
        if not path.is_dir():
            raise SaeMergeError(f"{loc.uri}: no such directory")
        manifest = self.read_manifest(loc)
        if manifest is not None:
            return {
                "uri": loc.uri,
                "kind": "published",
                "identity": manifest["content_hash"],
                "files": len(manifest["files"]),
                "total_size": manifest["total_size"],
            }
        return {"uri": loc.uri, "kind": "plain", **plain.local_identity(path, cache_root() / "hashes")}

    def fetch(self, loc: Location, *, verify: bool, require_manifest: bool, plain_identity: str | None) -> Path:
        """The directory itself, used in place; one without a manifest (a user's HF checkpoint)
        is accepted unless ``require_manifest``."""
        path = _local(loc)
        if not path.is_dir():
            raise SaeMergeError(f"{loc.uri}: no such directory")
        manifest = self.read_manifest(loc)
        if manifest is None and require_manifest:
            raise SaeMergeError(f"{loc.uri} has no {MANIFEST_NAME}: not a published directory")
        if manifest is not None and verify:
            mf.verify_dir(path, manifest, loc.uri)
        return path

    def output_dir(self, loc: Location) -> Path:
        """A hidden sibling of the destination, renamed onto it by :meth:`publish`."""
        path = _local(loc)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(path)
        tmp.mkdir()
        return tmp

    def publish(self, tmp: Path, loc: Location, content_hash: str | None) -> None:
        """Rename ``tmp`` onto the destination; a published one with other content is set
        aside first and removed after, identical content is left as it is."""
        final = _local(loc)
        manifest = mf.build_manifest(tmp, content_hash=content_hash)
        aside = None
        if final.exists():
            old = _read_manifest(final) if final.is_dir() else None
            if mf.same_content(old, manifest):
                log.info(
                    "%s already holds identical content (%s); nothing to publish",
                    loc.uri,
                    manifest["content_hash"][:16],
                )
                return
            if old is not None:
                log.warning(
                    "replacing the published directory %s (content %s -> %s)",
                    loc.uri,
                    old["content_hash"][:16],
                    manifest["content_hash"][:16],
                )
                aside = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
                os.rename(final, aside)
            elif final.is_dir() and not any(final.iterdir()):
                final.rmdir()
            else:
                raise SaeMergeError(
                    f"{loc.uri} exists and is not a published directory (no {MANIFEST_NAME}); refusing to replace it"
                )
        (tmp / MANIFEST_NAME).write_bytes(mf.dumps(manifest))
        try:
            os.rename(tmp, final)
        except OSError:
            # Another writer published first: fine when it holds the same content.
            if not mf.same_content(_read_manifest(final), manifest):
                raise
            log.info("%s was published concurrently with identical content", loc.uri)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        log.info(
            "published %s (%d files, %.1f MB, content %s)",
            loc.uri,
            len(manifest["files"]),
            manifest["total_size"] / 1e6,
            manifest["content_hash"][:16],
        )
