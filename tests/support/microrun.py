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
