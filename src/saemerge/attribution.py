"""Old path of :mod:`saemerge.run.attribution`, kept for one release: the very same module object."""

from __future__ import annotations

import sys

from saemerge.run import attribution as _moved
from saemerge.run.attribution import *  # noqa: F403  (what type checkers see here)

sys.modules[__name__] = _moved
