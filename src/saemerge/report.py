"""Old path of :mod:`saemerge.reports.run`, kept for one release: the very same module object."""

from __future__ import annotations

import sys

from saemerge.reports import run as _moved
from saemerge.reports.run import *  # noqa: F403  (what type checkers see here)

sys.modules[__name__] = _moved
