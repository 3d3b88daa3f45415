"""The local download cache (``$SAEMERGE_CACHE`` or ``~/.cache/saemerge``).

:mod:`~saemerge.cache.paths` says where it is (the module the others build on);
:mod:`~saemerge.cache.downloads` fills and reads it (content-keyed copies of published S3
directories, for :func:`saemerge.storage.local_input`); :mod:`~saemerge.cache.evict` says how
big it is and evicts entries (``saemerge cache info|prune``); :mod:`~saemerge.cache.budget` keeps it
within ``$SAEMERGE_CACHE_MAX_SIZE`` while steps add entries. Imports go one way:
paths <- evict <- budget <- downloads.
"""

from saemerge.cache.evict import Entry, Pruned, Usage, evict, usage
from saemerge.cache.paths import cache_root, scratch_dir

prune = evict  # the old name (the verb stays `saemerge cache prune`); kept for one release

__all__ = ["Entry", "Pruned", "Usage", "cache_root", "evict", "prune", "scratch_dir", "usage"]
