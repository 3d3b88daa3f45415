"""Old path of :mod:`saemerge.s3server.server`, kept for one release: the very same module object."""

from __future__ import annotations

import sys

from saemerge.s3server import server as _moved
from saemerge.s3server.server import *  # noqa: F403  (what type checkers see here)

sys.modules[__name__] = _moved
