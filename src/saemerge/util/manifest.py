"""Manifests of published directories: file list, sizes, sha256, and a content hash.

A directory (checkpoint, table set) is *published* when its ``manifest.json`` exists; the
manifest is written last, so its presence means every file it lists is complete. Readers
check sizes and sha256 against it and refuse a directory that does not match.

``files_hash`` is sha256 over the sorted (path, size, sha256) list: it identifies the exact
bytes and keys the local download cache. ``content_hash`` is what the caller says identifies
the content (e.g. a hash over a checkpoint's tensors); it defaults to ``files_hash``.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from saemerge.errors import SaeMergeError

MANIFEST_NAME = "manifest.json"
FORMAT = "saemerge-manifest/1"
_CHUNK = 8 << 20


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def files_hash(files: list[dict]) -> str:
    """sha256 over the sorted (path, size, sha256) entries."""
    h = hashlib.sha256()
    for entry in sorted(files, key=lambda e: e["path"]):
        h.update(f"{entry['path']}\0{entry['size']}\0{entry['sha256']}\n".encode())
    return h.hexdigest()


def list_files(root: Path, *, keep_manifest: bool = False) -> list[str]:
    """Relative POSIX paths of the files under root, sorted; without the manifest unless asked."""
    out = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if keep_manifest or rel != MANIFEST_NAME:
                out.append(rel)
    return sorted(out)


def _hash_all(root: Path, rels: list[str], workers: int) -> list[str]:
    # hashlib releases the GIL on large buffers, so threads hash shards in parallel.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [*pool.map(lambda rel: sha256_file(root / rel), rels)]


def build_manifest(
    root: str | os.PathLike,
    *,
    content_hash: str | None = None,
    known_sha256: dict[str, str] | None = None,
    workers: int = 4,
) -> dict:
    """The manifest of every file under ``root`` (not written).

    Args:
        root: a directory.
        content_hash: the caller's content identity; default: the files hash.
        known_sha256: digests already computed for some relative paths (skips re-reading them).
        workers: threads hashing files in parallel.
    """
    root = Path(root)
    rels = list_files(root)
    known = known_sha256 or {}
    todo = [r for r in rels if r not in known]
    digests = dict(zip(todo, _hash_all(root, todo, workers)))
    digests.update({r: known[r] for r in rels if r in known})
    files = [{"path": r, "size": (root / r).stat().st_size, "sha256": digests[r]} for r in rels]
    fh = files_hash(files)
    return {
        "format": FORMAT,
        "content_hash": content_hash or fh,
        "files_hash": fh,
        "total_size": sum(f["size"] for f in files),
        "files": files,
    }


def dumps(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def loads(data: bytes, where: str) -> dict:
    """Parse and sanity-check a manifest read from ``where`` (for messages)."""
    try:
        manifest = json.loads(data)
        files = manifest["files"]
        ok = manifest.get("format") == FORMAT and all(
            isinstance(f["path"], str) and isinstance(f["size"], int) and len(f["sha256"]) == 64 for f in files
        )
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise SaeMergeError(f"{where} is not a valid saemerge manifest")
    for f in files:
        # A manifest names files under its own directory only.
        parts = Path(f["path"]).parts
        if f["path"].startswith("/") or ".." in parts or not parts:
            raise SaeMergeError(f"{where} lists an unsafe path {f['path']!r}")
    if files_hash(files) != manifest.get("files_hash"):
        raise SaeMergeError(f"{where}: files_hash does not match its file list (edited manifest?)")
    return manifest


def same_content(a: dict | None, b: dict | None) -> bool:
    if not a or not b:
        return False
    return a["files_hash"] == b["files_hash"] and a["content_hash"] == b["content_hash"]


def verify_dir(
    root: str | os.PathLike, manifest: dict, where: str, *, check_hashes: bool = True, workers: int = 4
) -> None:
    """Raise SaeMergeError unless ``root`` holds exactly the manifest's files with its sizes/sha256.

    Args:
        where: the directory's name in messages (a URI).
        check_hashes: False checks presence and sizes only (for a cache entry verified on download).
    """
    root = Path(root)
    expected = {f["path"]: f for f in manifest["files"]}
    present = set(list_files(root))
    missing = sorted(set(expected) - present)
    if missing:
        raise SaeMergeError(f"{where}: {len(missing)} file(s) of its manifest are missing, e.g. {missing[0]!r}")
    extra = sorted(present - set(expected))
    if extra:
        raise SaeMergeError(f"{where}: file {extra[0]!r} is not in its manifest")
    for rel, entry in expected.items():
        size = (root / rel).stat().st_size
        if size != entry["size"]:
            raise SaeMergeError(f"{where}: {rel!r} has {size} bytes, its manifest says {entry['size']}")
    if check_hashes:
        rels = sorted(expected)
        for rel, digest in zip(rels, _hash_all(root, rels, workers)):
            if digest != expected[rel]["sha256"]:
                raise SaeMergeError(f"{where}: {rel!r} does not match the sha256 in its manifest")
