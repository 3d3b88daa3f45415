"""Why a local run failed: the failing step and its one-line reason, read from the kfp.local log."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FAILED_TASK = re.compile(r"Task '([^']+)' finished with status FAILURE")
# kfp.local prints a step's output indented (4 spaces a level, kfp.local.logging_utils), so the
# exception line of a step's traceback starts after blanks, not in column 0.
_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception|Interrupt)): (.+)$")


def failure_reason(log_text: str) -> tuple[str | None, str | None, bool]:
    """(failing step, its one-line reason, whether a resume can fix it) from a kfp.local log.

    A :class:`SaeMergeError` is a problem with the run's input or configuration: running the
    same thing again fails the same way. Anything else (a lost connection, a killed process)
    may pass on a resume.
    """
    text = _ANSI.sub("", log_text)
    failed = _FAILED_TASK.search(text)
    step = failed.group(1) if failed else None
    before = text[: failed.start()] if failed else text  # the failing step's traceback ends just before
    errors = [m for m in map(_ERROR_LINE.match, before.splitlines()) if m]
    if not errors:
        return step, None, True
    kind, message = errors[-1].group(1), errors[-1].group(2).strip()
    permanent = kind == "SaeMergeError"
    return step, (message if permanent else f"{kind}: {message}"), not permanent
