"""Storage URIs: a local path, ``file:///path`` or ``s3://bucket/prefix``, parsed into a :class:`Location`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from saemerge.errors import SaeMergeError


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


def join(uri: str | os.PathLike, *parts: str) -> str:
    """Join path parts onto a URI: ``join("s3://b/run", "gen-00", "x.parquet")``."""
    text = os.fspath(uri)
    if text.startswith("s3://"):
        pieces = [text.rstrip("/")] + [p.strip("/") for p in parts if p.strip("/")]
        return "/".join(pieces)
    return str(Path(text, *parts))
