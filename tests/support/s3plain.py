"""Putting a directory into S3 the way `aws s3 sync` would: its files as objects, no manifest.json."""

from __future__ import annotations

from pathlib import Path

from saemerge import manifest as mf
from saemerge import storage


def put_plain(src: Path, uri: str, **transfer) -> None:
    """Upload every file under ``src`` to ``uri``/<relative path> (TransferConfig settings in ``transfer``)."""
    from boto3.s3.transfer import TransferConfig

    loc = storage.parse_uri(uri)
    client = storage.s3_client()
    config = TransferConfig(**transfer) if transfer else None
    for rel in mf.list_files(src):
        client.upload_file(str(Path(src) / rel), loc.bucket, f"{loc.key}/{rel}", Config=config)
