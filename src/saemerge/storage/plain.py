"""Plain (unpublished) directories: a user's HF checkpoint as it lies in S3 or on disk.

A *published* directory carries saemerge's ``manifest.json`` (file list, sizes, sha256). A
plain one is whatever the user put there (``huggingface-cli download`` + ``aws s3 sync``,
say). It is accepted as a run input, identified and verified like this:

- **S3: identity from the listing.** One LIST gives every object's key, size and ETag; the
  identity is sha256 over the sorted (path, size, ETag) lines (:func:`listing_hash`, domain-
  separated from manifest hashes). It is known before any download, the same in every pod,
  and changes whenever an object is rewritten (a new ETag), so content-addressed work made
  from an input that changed is never reused. The cost: the same bytes uploaded twice with
  other part sizes get another identity (their derived models are made once more).
  ``saemerge upload`` publishes a copy with a manifest, whose identity is its content.
- **S3: verified on first read.** The download lands in the cache under the listing hash;
  each file must have its listed size; its bytes must give its ETag when the ETag says how
  (the MD5 of the file for a single-part upload; the MD5 of the parts' MD5s, "…-N", for a
  multipart one whose part size one of the usual layouts reproduces; other ETags are logged
  and the file is checked by size); and a second LIST after the download must give the same
  listing (nothing was rewritten meanwhile). A mismatch fails the read. The sha256 of each
  file is computed in the same pass and written into the cache entry's manifest, so the entry
  is checked like any other.
- **Local: identity from the bytes.** A local directory is read in place; its identity is
  its files hash (sha256 of every file, as a manifest would say), remembered in the cache
  under the files' (path, size, mtime, inode) so each directory is hashed once per change.

ETags of objects encrypted with SSE-KMS or SSE-C are not MD5s; such objects are checked by
size and by the second listing only (logged).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from saemerge.errors import SaeMergeError
from saemerge.util import manifest as mf

log = logging.getLogger(__name__)

LISTING_FORMAT = b"saemerge-listing/1\n"
MIB = 1 << 20
_CHUNK = MIB  # every candidate part size is a whole number of these
_SINGLE = re.compile(r"^[0-9a-f]{32}$")
_MULTI = re.compile(r"^([0-9a-f]{32})-(\d+)$")
# Part sizes of common uploaders (boto3/aws cli 8 MiB, saemerge 16 MiB, S3's 5 MiB minimum ...).
_PART_SIZES_MIB = (5, 8, 10, 15, 16, 25, 32, 50, 64, 100, 128, 256, 512, 1024)


def listing_hash(entries: Iterable[Mapping]) -> str:
    """sha256 over sorted (path, size, ETag) lines of an S3 listing: a plain S3 directory's identity."""
    h = hashlib.sha256(LISTING_FORMAT)
    for e in sorted(entries, key=lambda e: e["path"]):
        h.update(f"{e['path']}\0{e['size']}\0{e['etag']}\n".encode())
    return h.hexdigest()


def check_paths(entries: Iterable[Mapping], where: str) -> None:
    for e in entries:
        parts = Path(e["path"]).parts
        if e["path"].startswith("/") or ".." in parts or not parts:
            raise SaeMergeError(f"{where}: unsafe object name {e['path']!r}")


def _part_sizes(size: int, parts: int) -> list[int]:
    """Part sizes (whole MiB) that split ``size`` bytes into exactly ``parts`` equal parts (the last smaller).

    Every whole-MiB size in the valid range when there are few, else the usual ones in it.
    """
    if parts == 1:
        return [max(size, 1)]
    low, high = -(-size // parts), (size - 1) // (parts - 1)  # p * (parts-1) < size <= p * parts
    first, last = -(-low // MIB), high // MIB
    if last - first < 32:
        return [m * MIB for m in range(first, last + 1)]
    return [m * MIB for m in _PART_SIZES_MIB if first <= m <= last]


def digest_file(path: Path, etag: str | None) -> tuple[str, bool | None]:
    """(sha256 of the file, whether its bytes give ``etag``: True, False, or None when unknowable).

    One read of the file feeds sha256, the whole-file MD5 and the MD5 of each candidate
    multipart layout.
    """
    etag = (etag or "").strip('"').lower()
    single, multi = _SINGLE.match(etag), _MULTI.match(etag)
    size = path.stat().st_size
    layouts = _part_sizes(size, int(multi.group(2))) if multi else []
    sha, whole = hashlib.sha256(), hashlib.md5() if single else None
    parts: dict[int, list] = {p: [hashlib.md5(), []] for p in layouts}  # part size -> [current, done digests]
    offset = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            if whole is not None:
                whole.update(chunk)
            for p, state in parts.items():
                if offset and offset % p == 0:
                    state[1].append(state[0].digest())
                    state[0] = hashlib.md5()
                state[0].update(chunk)
            offset += len(chunk)
    if whole is not None:
        return sha.hexdigest(), whole.hexdigest() == etag
    for state in parts.values():
        digests = state[1] + [state[0].digest()]
        if f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}" == etag:
            return sha.hexdigest(), True
    return sha.hexdigest(), None  # no known layout reproduces it: uneven parts, or SSE


def verify_download(root: Path, entries: Sequence[Mapping], where: str, workers: int = 2) -> dict[str, str]:
    """Check downloaded files against their listing (sizes, ETags); return their sha256 by path.

    Raises:
        SaeMergeError: a file of another size, or bytes that do not give its ETag.
    """
    for e in entries:
        have = (root / e["path"]).stat().st_size
        if have != e["size"]:
            raise SaeMergeError(f"{where}: {e['path']!r} downloaded with {have} bytes, the listing says {e['size']}")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda e: digest_file(root / e["path"], e.get("etag")), entries))
    unknown = []
    for e, (_sha, ok) in zip(entries, results):
        if ok is False:
            raise SaeMergeError(
                f"{where}: {e['path']!r} does not match its ETag {e['etag']} "
                "(changed while downloading, or corrupted in transit)"
            )
        if ok is None:
            unknown.append(e["path"])
    if unknown:
        log.warning(
            "%s: %d file(s) checked by size only (ETag not an MD5 of a known layout), e.g. %s",
            where,
            len(unknown),
            unknown[0],
        )
    return {e["path"]: sha for e, (sha, _ok) in zip(entries, results)}


# -- local plain directories ----------------------------------------------------------------------
def local_identity(path: Path, memo_dir: Path | None) -> dict:
    """{"identity", "files", "total_size"} of a local directory without a manifest.

    The identity is the directory's files hash; it is remembered in ``memo_dir`` under a hash
    of the files' (path, size, mtime, inode), so an unchanged directory is not read again.
    """
    rels = mf.list_files(path)
    if not rels:
        raise SaeMergeError(f"{path}: the directory is empty")
    stats = [(rel, os.stat(path / rel)) for rel in rels]
    stamp = hashlib.sha256(str(path.resolve()).encode())
    for rel, st in stats:
        stamp.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    memo = memo_dir / f"{stamp.hexdigest()}.json" if memo_dir is not None else None
    if memo is not None and memo.is_file():
        try:
            return json.loads(memo.read_text())
        except ValueError:
            pass
    manifest = mf.build_manifest(path)
    info = {"identity": manifest["files_hash"], "files": len(rels), "total_size": manifest["total_size"]}
    if memo is not None:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, memo)
    return info
