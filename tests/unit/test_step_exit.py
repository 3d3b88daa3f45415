"""A step process leaves its heap out of the interpreter's last garbage collection."""

from __future__ import annotations

import subprocess
import sys

# atexit's handlers run as at a normal exit; then the count of objects gc.freeze moved out of reach
_PROBE = "import atexit, gc{imports}; atexit._run_exitfuncs(); print(gc.get_freeze_count())"


def _frozen_at_exit(imports: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(imports=imports)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


def test_importing_the_steps_freezes_the_heap_at_exit():
    assert _frozen_at_exit("") == 0  # a plain interpreter collects everything at exit
    assert _frozen_at_exit(", saemerge.steps") > 1000  # a step's live objects are left to the OS
