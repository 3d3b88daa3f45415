"""A size budget for the download cache, kept as entries are added.

A step that reads many models (evaluate: every candidate of a generation, 8 × ~15 GB at 7B)
would otherwise keep each on the pod's disk until the step ends. With
``SAEMERGE_CACHE_MAX_SIZE`` set (bytes, or with a unit: ``60Gi``), adding an entry first
removes the least recently used ones until the new one fits (:func:`make_room`), so a model
stays cached after its use only while there is room for it. Entries this process is reading
are never removed (:func:`in_use` pins them); neither are entries any process used in the last
``SAEMERGE_CACHE_MIN_IDLE_S`` seconds (default 600; a cache volume of one pod sets 0, a cache
shared by several pods keeps the default so that one pod does not pull a checkpoint from under
another). Without the variable nothing is removed (``saemerge cache prune`` does it by hand:
:func:`saemerge.cache.evict.evict`).

The compiled pipeline sets both variables for the cache volume it mounts
(:mod:`saemerge.pipeline.common`), sized from the compile options.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from saemerge.cache.evict import evict
from saemerge.cache.paths import objects_dir
from saemerge.util.units import parse_size

log = logging.getLogger(__name__)

MAX_SIZE_VAR = "SAEMERGE_CACHE_MAX_SIZE"
MIN_IDLE_VAR = "SAEMERGE_CACHE_MIN_IDLE_S"
_PINS: Counter[str] = Counter()
_LOCK = threading.Lock()


def max_bytes() -> int | None:
    raw = os.environ.get(MAX_SIZE_VAR)
    return parse_size(raw, what=MAX_SIZE_VAR) if raw else None


def min_idle_s() -> float:
    raw = os.environ.get(MIN_IDLE_VAR)
    return float(raw) if raw else 600.0


@contextmanager
def in_use(path: Path) -> Iterator[Path]:
    """Pin a cache entry while the caller reads it (a no-op for paths outside the cache)."""
    objects = objects_dir()
    key = path.name if path.parent == objects else None
    if key is None:
        yield path
        return
    with _LOCK:
        _PINS[key] += 1
    try:
        yield path
    finally:
        with _LOCK:
            _PINS[key] -= 1
            if _PINS[key] <= 0:
                del _PINS[key]
        with suppress(OSError):  # its last use, for the LRU order
            os.utime(path)


def make_room(incoming: str, incoming_bytes: int = 0) -> None:
    """Remove least recently used entries so that ``incoming_bytes`` more fit the budget."""
    limit = max_bytes()
    if limit is None:
        return
    with _LOCK:
        keep = {*_PINS, incoming}
    result = evict(max(0, limit - incoming_bytes), min_idle_s=min_idle_s(), keep=keep)
    if result.removed_entries:
        log.info(
            "cache budget %s: removed %d least recently used model(s), %.1f MB",
            os.environ.get(MAX_SIZE_VAR),
            result.removed_entries,
            result.freed_bytes / 1e6,
        )
    if result.kept_bytes + incoming_bytes > limit:
        log.warning(
            "cache budget %s exceeded: %.1f MB kept (in use or used recently) + %.1f MB incoming",
            os.environ.get(MAX_SIZE_VAR),
            result.kept_bytes / 1e6,
            incoming_bytes / 1e6,
        )
