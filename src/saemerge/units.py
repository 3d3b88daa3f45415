"""Old path of :mod:`saemerge.util.units`, kept for one release: the very same module object."""

from __future__ import annotations

import sys

from saemerge.util import units as _moved
from saemerge.util.units import *  # noqa: F403  (what type checkers see here)

sys.modules[__name__] = _moved
