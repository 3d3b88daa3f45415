"""The local download cache (``$SAEMERGE_CACHE`` or ``~/.cache/saemerge``).

:mod:`~saemerge.cache.downloads` fills and reads it (content-keyed copies of published S3
directories, for :func:`saemerge.storage.local_input`); :mod:`~saemerge.cache.prune` says how
big it is and prunes it (``saemerge cache info|prune``); :mod:`~saemerge.cache.budget` keeps it
within ``$SAEMERGE_CACHE_MAX_SIZE`` while steps add entries.
"""

from saemerge.cache.downloads import cache_root, scratch_dir
from saemerge.cache.prune import Entry, Pruned, Usage, prune, usage

__all__ = ["Entry", "Pruned", "Usage", "cache_root", "prune", "scratch_dir", "usage"]
