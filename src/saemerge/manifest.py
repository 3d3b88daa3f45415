"""Old path of :mod:`saemerge.util.manifest`, kept for one release: the very same module object."""

from __future__ import annotations

import sys

from saemerge.util import manifest as _moved
from saemerge.util.manifest import *  # noqa: F403  (what type checkers see here)

sys.modules[__name__] = _moved
