"""User-facing errors.

Every error a user can cause (a bad path, a mismatched checkpoint, an unknown method,
a bad flag value) is raised as :class:`SaeMergeError` with a one-line message that names
the input and what is wrong. The CLI prints it as ``saemerge: error: <message>`` and exits 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SaeMergeError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> SaeMergeError:
    """An error for an unknown registry name, suggesting the closest known names.

    >>> str(unknown_name("method", "tie", ["ties", "linear"]))
    "unknown method 'tie'; did you mean 'ties'? (known: linear, ties)"
    """
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return SaeMergeError(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")
