"""The storage seam: what a backend (local paths, S3) does for :mod:`saemerge.storage`.

:mod:`saemerge.storage` parses a URI once, picks the backend for it and calls one of these
methods with the parsed :class:`~saemerge.storage.uri.Location`; a backend never sees
another backend's locations. The generic parts (the published-directory protocol around
:meth:`Backend.output_dir` and :meth:`Backend.publish`) stay in :mod:`saemerge.storage`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from saemerge.storage.uri import Location


class Backend(Protocol):
    """Operations on one kind of location. Errors are one-line :class:`~saemerge.errors.SaeMergeError`."""

    def exists(self, loc: Location) -> bool:
        """True for an existing file/object, or for a published directory (its manifest exists)."""

    def read_bytes(self, loc: Location) -> bytes:
        """The whole file/object; an error when there is none."""

    def write_bytes(self, loc: Location, data: bytes) -> None:
        """Write one small file/object atomically."""

    def put_file(self, src: Path, loc: Location) -> None:
        """Copy the local file ``src`` (it exists) to ``loc``."""

    def get_file(self, loc: Location, dest: Path) -> None:
        """Copy ``loc`` to the local file ``dest``, replacing it atomically."""

    def list_uris(self, loc: Location, *, recursive: bool) -> list[str]:
        """URIs under the directory ``loc``, sorted (see :func:`saemerge.storage.list_uris`)."""

    def ensure_bucket(self, loc: Location, *, create: bool) -> None:
        """Check that the container of ``loc`` exists, creating it when asked."""

    def read_manifest(self, loc: Location) -> dict | None:
        """The manifest of the published directory at ``loc``, or None when there is none."""

    def identify(self, loc: Location) -> dict:
        """{"uri", "kind" (published or plain), "identity", "files", "total_size"} of the directory ``loc``."""

    def fetch(self, loc: Location, *, verify: bool, require_manifest: bool, plain_identity: str | None) -> Path:
        """A local directory holding the directory at ``loc``, verified against its manifest
        (or, for a plain directory identified as ``plain_identity``, against its listing)."""

    def output_dir(self, loc: Location) -> Path:
        """A new empty local directory to write what will be published at ``loc``."""

    def publish(self, tmp: Path, loc: Location, content_hash: str | None) -> None:
        """Make the files in ``tmp`` the directory at ``loc``, ``manifest.json`` last.

        ``tmp`` (from :meth:`output_dir`) is the caller's to remove afterwards; it may be gone.
        """
