"""Old path of :mod:`saemerge.s3server.tls`, kept for one release: the very same module object."""

from __future__ import annotations

import sys

from saemerge.s3server import tls as _moved
from saemerge.s3server.tls import *  # noqa: F403  (what type checkers see here)

sys.modules[__name__] = _moved
