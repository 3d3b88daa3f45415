"""The run parameters of the integration tests' micro runs (`saemerge run --local` on the micro
bench): a handful of optimisation and test items per task, so a run takes seconds a step."""

from __future__ import annotations

MICRO_SIZES = [
    "--param",
    'opt_sizes={"saebench_math": 6, "saebench_multilingual": 6}',
    "--param",
    'test_sizes={"saebench_math": 8, "saebench_multilingual": 8}',
]
# SAE and M2N2: an archive of 4 (2 variants per expert).
MICRO_SAE = [*MICRO_SIZES, "--param", "archive_size=4"]


def interrupt_at_first_generation(args: list[str], what: str = "generation 0") -> tuple[int, str]:
    """Starts a run (``args``, a command line) and interrupts it with SIGINT, as Ctrl-C, once it
    prints its first generation's line. Fails the test if the run ends before that.

    Returns:
        The run's exit code and everything it printed (stdout and stderr together).
    """
    import signal
    import subprocess

    import pytest

    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "generation  0 (s_t=" in line:
            break
    else:
        proc.wait(timeout=120)
        pytest.fail(f"the run ended before {what}:\n" + "".join(seen[-40:]))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, "".join(seen) + out
