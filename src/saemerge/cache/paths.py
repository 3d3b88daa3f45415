"""Where the download cache lives: the one module the rest of :mod:`saemerge.cache` builds on.

The cache is ``$SAEMERGE_CACHE`` or ``~/.cache/saemerge``:

```
<cache>/objects/<key>/   one entry per content (files hash, or a plain directory's listing hash)
<cache>/tmp/<name>/      in-flight downloads and uploads (same filesystem: an entry appears by one rename)
```

Layering inside the package: ``paths`` <- ``evict`` (sizing, eviction) <- ``budget`` (eviction as
entries are added) <- ``downloads`` (filling and reading entries). Nothing imports upwards.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_root() -> Path:
    """``$SAEMERGE_CACHE``, or ``~/.cache/saemerge``."""
    return Path(os.environ.get("SAEMERGE_CACHE") or "~/.cache/saemerge").expanduser()


def objects_dir(root: Path | None = None) -> Path:
    """``<cache>/objects``: the entries."""
    return (cache_root() if root is None else Path(root)) / "objects"


def temp_dir(root: Path | None = None) -> Path:
    """``<cache>/tmp``: in-flight downloads and uploads."""
    return (cache_root() if root is None else Path(root)) / "tmp"


def entry_path(key: str) -> Path:
    """Where the entry ``key`` lives (whether or not it is there)."""
    return objects_dir() / key


def private_root() -> Path:
    """The cache root, created readable by its owner only (it holds copies of private models)."""
    root = cache_root()
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)  # mkdir's mode does not reach parents created on the way, and umask applies
    return root


def scratch_dir(prefix: str) -> Path:
    """A new private directory under the cache (same filesystem as cached downloads)."""
    root = temp_dir(private_root())
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
